//! Line plots written as plain SVG (no plotting library): axes with "nice" ticks, linear,
//! logarithmic or "nines" (percentile tail) scales, one polyline per series and a legend.

use std::fmt::Write;

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// Base-10 logarithm (values must be > 0).
    Log,
    /// For quantiles q in [0, 1): -log10(1 - q), labelled 0%, 90%, 99%, 99.9%...
    Nines,
}

/// One line.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke colour.
    pub color: &'static str,
    /// Dashed instead of solid.
    pub dashed: bool,
    /// Points (x, y) in data units; also drawn as markers.
    pub points: Vec<(f64, f64)>,
    /// Points drawn hollow (e.g. failed ramp steps).
    pub hollow: Vec<bool>,
}

/// A plot.
pub struct Plot {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// X scale.
    pub x_scale: Scale,
    /// Y scale.
    pub y_scale: Scale,
    /// Lines.
    pub series: Vec<Series>,
    /// Horizontal reference lines (y, label).
    pub h_lines: Vec<(f64, String)>,
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const ML: f64 = 72.0;
const MR: f64 = 24.0;
const MT: f64 = 40.0;
const MB: f64 = 56.0;
const MAX_NINES: f64 = 5.0;

fn fwd(scale: Scale, v: f64) -> f64 {
    match scale {
        Scale::Linear => v,
        Scale::Log => v.max(1e-9).log10(),
        Scale::Nines => -(1.0 - v).max(10f64.powf(-MAX_NINES)).log10(),
    }
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Ticks (in data units) and the transformed range they cover.
fn ticks(scale: Scale, lo: f64, hi: f64) -> (Vec<(f64, String)>, f64, f64) {
    match scale {
        Scale::Linear => {
            let (lo, hi) = if hi > lo {
                (lo.min(0.0), hi)
            } else {
                (0.0, lo.max(1.0))
            };
            let raw = (hi - lo) / 6.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(10.0 * mag);
            let top = (hi / step).ceil() * step;
            let mut t = Vec::new();
            let mut v = (lo / step).floor() * step;
            while v <= top + step * 1e-9 {
                t.push((v, fmt_num(v)));
                v += step;
            }
            (t, (lo / step).floor() * step, top)
        }
        Scale::Log => {
            let a = lo.max(1e-9).log10().floor() as i32;
            let mut b = hi.max(1e-9).log10().ceil() as i32;
            if b <= a {
                b = a + 1;
            }
            let mut t = Vec::new();
            for e in a..=b {
                let base = 10f64.powi(e);
                t.push((base, fmt_num(base)));
                if b - a <= 3 && e < b {
                    t.push((2.0 * base, fmt_num(2.0 * base)));
                    t.push((5.0 * base, fmt_num(5.0 * base)));
                }
            }
            (t, a as f64, b as f64)
        }
        Scale::Nines => {
            let top = fwd(Scale::Nines, hi).ceil().clamp(1.0, MAX_NINES);
            let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
            let t = (0..=top as usize)
                .map(|n| (1.0 - 10f64.powi(-(n as i32)), labels[n].to_string()))
                .collect();
            (t, 0.0, top)
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders `plot` as a standalone SVG document.
pub fn render(plot: &Plot) -> String {
    let pts = plot.series.iter().flat_map(|s| s.points.iter());
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        xlo = xlo.min(x);
        xhi = xhi.max(x);
        ylo = ylo.min(y);
        yhi = yhi.max(y);
    }
    for (y, _) in &plot.h_lines {
        ylo = ylo.min(*y);
        yhi = yhi.max(*y);
    }
    if xlo > xhi {
        (xlo, xhi, ylo, yhi) = (1.0, 10.0, 1.0, 10.0);
    }
    let (xt, x0, x1) = ticks(plot.x_scale, xlo, xhi);
    let (yt, y0, y1) = ticks(plot.y_scale, ylo, yhi);
    let pw = W - ML - MR;
    let ph = H - MT - MB;
    let px = |x: f64| ML + (fwd(plot.x_scale, x) - x0) / (x1 - x0).max(1e-12) * pw;
    let py = |y: f64| MT + ph - (fwd(plot.y_scale, y) - y0) / (y1 - y0).max(1e-12) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        W / 2.0,
        esc(&plot.title)
    );
    for (v, label) in &xt {
        let x = px(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{MT}" x2="{x:.1}" y2="{:.1}" stroke="#e4e4e4"/>"##,
            MT + ph
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            MT + ph + 16.0,
            esc(label)
        );
    }
    for (v, label) in &yt {
        let y = py(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/>"##,
            ML + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            ML - 6.0,
            y + 4.0,
            esc(label)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        ML + pw / 2.0,
        H - 14.0,
        esc(&plot.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        MT + ph / 2.0,
        MT + ph / 2.0,
        esc(&plot.y_label)
    );
    for (v, label) in &plot.h_lines {
        let y = py(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#c00" stroke-dasharray="6 4"/>"##,
            ML + pw
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#c00">{}</text>"##,
            ML + pw - 4.0,
            y - 4.0,
            esc(label)
        );
    }
    for (i, ser) in plot.series.iter().enumerate() {
        let path: Vec<String> = ser
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let dash = if ser.dashed {
            r#" stroke-dasharray="5 4""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
            ser.color,
            path.join(" ")
        );
        for (j, &(x, y)) in ser.points.iter().enumerate() {
            let hollow = ser.hollow.get(j).copied().unwrap_or(false);
            let fill = if hollow { "white" } else { ser.color };
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{fill}" stroke="{}"/>"#,
                px(x),
                py(y),
                ser.color
            );
        }
        let ly = MT + 14.0 + i as f64 * 18.0;
        let lx = ML + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/>"#,
            lx + 24.0,
            ser.color
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_a_complete_svg_document() {
        let plot = Plot {
            title: "t <x>".into(),
            x_label: "ms".into(),
            y_label: "q".into(),
            x_scale: Scale::Log,
            y_scale: Scale::Nines,
            series: vec![Series {
                name: "a".into(),
                color: "#1f77b4",
                dashed: false,
                points: vec![(0.5, 0.0), (1.0, 0.5), (3.0, 0.99), (9.0, 1.0)],
                hollow: vec![],
            }],
            h_lines: vec![],
        };
        let svg = render(&plot);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;x&gt;"));
        assert!(svg.contains("99%"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn linear_ticks_are_round() {
        let (t, lo, hi) = ticks(Scale::Linear, 0.0, 9300.0);
        assert_eq!(lo, 0.0);
        assert!(hi >= 9300.0);
        assert!(t.iter().all(|(v, _)| v % 1000.0 == 0.0));
    }
}
