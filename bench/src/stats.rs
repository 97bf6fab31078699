//! Latency histograms (HDR, microsecond resolution) and their JSON summaries.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Quantiles sampled for CDF plots.
const CDF_QUANTILES: &[f64] = &[
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97,
    0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

/// A new histogram of microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Records `us` microseconds, clamped into range.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    let _ = h.record(us.clamp(1, 600_000_000));
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// `{count, p50, p90, p99, p999, max, mean}` in milliseconds.
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p90": ms(h.value_at_quantile(0.9)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": (h.mean() / 10.0).round() / 100.0,
    })
}

/// `[[latency_ms, quantile], ...]` for a CDF plot.
pub fn cdf(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!([]);
    }
    Value::Array(
        CDF_QUANTILES
            .iter()
            .map(|&q| json!([ms(h.value_at_quantile(q)), q]))
            .collect(),
    )
}

/// A percentile (ms) from a summary, if present.
pub fn pick(summary: &Value, key: &str) -> Option<f64> {
    summary.get(key).and_then(Value::as_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_in_milliseconds() {
        let mut h = new_hist();
        for us in 1..=1000 {
            record(&mut h, us * 10);
        }
        let s = summary(&h);
        assert_eq!(s["count"], 1000);
        let p50 = pick(&s, "p50").unwrap();
        assert!((4.9..=5.1).contains(&p50), "{p50}");
        assert!(pick(&s, "max").unwrap() >= 9.99);
        assert_eq!(cdf(&h).as_array().unwrap().len(), CDF_QUANTILES.len());
    }
}
