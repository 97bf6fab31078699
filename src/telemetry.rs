//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON lines.
//! Text is coloured only when stderr is a terminal, so log files hold no escape codes.
//!
//! Libraries that print raw traffic at debug level (Socket.io packets carry tokens, SQL parameters
//! carry hashes) are held at `info` unless `RUST_LOG` names them explicitly, so `RUST_LOG=debug`
//! never writes a secret.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Targets whose debug output contains request payloads.
const CHATTY: &[&str] = &[
    "socketioxide",
    "socketioxide_redis",
    "engineioxide",
    "tokio_postgres",
    "fred",
    "hyper",
    "hyper_util",
    "tungstenite",
    "tokio_tungstenite",
];

/// The filter: `RUST_LOG` (or `info`), plus `info` for each chatty library it does not name.
pub fn filter_directives(rust_log: Option<&str>) -> String {
    let base = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let mut directives = vec![base.to_owned()];
    for target in CHATTY {
        if !base.contains(target) {
            directives.push(format!("{target}=info"));
        }
    }
    directives.join(",")
}

/// Whether text logs get colour codes: only on a terminal (a log file or a pipe gets plain text),
/// and never when `NO_COLOR` is set to anything non-empty (<https://no-color.org>).
pub fn use_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(filter_directives(rust_log.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(filter_directives(None)));
    let registry = tracing_subscriber::registry().with(filter);
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(colour).with_writer(std::io::stderr))
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None), "a file or a pipe gets plain text");
        assert!(!use_colour(true, Some(std::ffi::OsStr::new("1"))));
        assert!(use_colour(true, Some(std::ffi::OsStr::new(""))));
    }

    #[test]
    fn debug_logging_keeps_packet_dumping_libraries_at_info() {
        let f = filter_directives(Some("debug"));
        assert!(f.starts_with("debug,"));
        assert!(f.contains("socketioxide=info") && f.contains("tokio_postgres=info"));
        // Naming a library explicitly is the operator's choice.
        let f = filter_directives(Some("info,socketioxide=trace"));
        assert!(!f.contains("socketioxide=info"));
    }
}
