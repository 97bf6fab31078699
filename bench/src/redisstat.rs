//! What Redis spends during a scenario: the change of `used_cpu_sys + used_cpu_user` in its
//! `INFO cpu` section. That is the whole Redis server (every client's commands and its own
//! background work), so it is one side's cost only while that side alone uses it. Read through
//! `redis-cli`, so the generator needs no Redis client.

use std::{net::IpAddr, process::Command};

use anyhow::bail;

/// Refuses a `redis://` / `rediss://` / `postgres://` URL whose host is not a loopback address
/// (or `localhost`, or empty: the local default or a Unix socket).
pub fn check_loopback_url(url: &str) -> anyhow::Result<()> {
    let Some((_, rest)) = url.split_once("://") else {
        bail!("{url}: expected scheme://host:port");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let ok = host.is_empty()
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !ok {
        bail!("{url}: only loopback addresses may be targeted");
    }
    Ok(())
}

/// `used_cpu_sys + used_cpu_user` from the text of `INFO cpu`.
fn parse_info_cpu(text: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

/// Redis's CPU seconds so far (user + system); None without `redis-cli` or access.
pub fn cpu_secs(url: &str) -> Option<f64> {
    let out = Command::new("redis-cli")
        .args(["--no-auth-warning", "-u", url, "info", "cpu"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_info_cpu(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_cpu_is_summed_and_other_fields_are_ignored() {
        let text = "# CPU\r\nused_cpu_sys:0.745950\r\nused_cpu_user:0.848113\r\n\
                    used_cpu_sys_children:9.0\r\nused_cpu_sys_main_thread:0.7\r\n";
        let v = parse_info_cpu(text).unwrap();
        assert!((v - 1.594063).abs() < 1e-9, "{v}");
        assert_eq!(parse_info_cpu("# CPU\r\nused_cpu_sys:1.0\r\n"), None);
    }

    #[test]
    fn only_loopback_urls_pass() {
        for ok in [
            "redis://127.0.0.1:6379",
            "redis://:secret@127.0.0.1:6379/2",
            "redis://localhost",
            "rediss://user:p%40ss@[::1]:6380",
            "postgres://postgres@127.0.0.1:5432/db",
            "postgres:///db?host=/var/run/postgresql",
        ] {
            assert!(check_loopback_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "redis://10.0.0.1:6379",
            "redis://example.com",
            "redis://127.0.0.1@10.0.0.1:6379",
            "127.0.0.1:6379",
        ] {
            assert!(check_loopback_url(bad).is_err(), "{bad}");
        }
    }
}
