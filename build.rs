//! Builds the web client (`web/dist`) as part of `cargo build --release` when it is missing or
//! older than its sources, so that `cargo run --release` or `cargo install --path .` on a fresh
//! clone embeds the UI (see `src/http/web.rs`). It says what it does with `cargo:warning`. Debug
//! builds (tests) skip it and read `web/dist` at run time; `NEXUS_SKIP_WEB_BUILD=1` skips it too.
//! Without Node.js the server still builds, and `/` says how to get the client.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Instant, SystemTime},
};

/// What `npm run build` reads: a change to any of them makes `web/dist` stale.
const INPUTS: [&str; 6] = [
    "web/src",
    "web/public",
    "web/index.html",
    "web/package.json",
    "web/package-lock.json",
    "web/vite.config.js",
];

fn main() {
    for path in INPUTS {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=NEXUS_SKIP_WEB_BUILD");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if !release || std::env::var_os("NEXUS_SKIP_WEB_BUILD").is_some() {
        return;
    }
    let web = Path::new("web");
    if !web.join("package.json").is_file() {
        return;
    }
    let built = modified(&web.join("dist/index.html"));
    let sources = INPUTS.iter().filter_map(|p| newest(Path::new(p))).max();
    if let (Some(built), Some(sources)) = (built, sources)
        && built >= sources
    {
        return;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        println!(
            "cargo:warning=Node.js/npm not found: the web client is not built, so / will only say how to get it (install Node 20+ and rebuild, or set WEB_DIR)"
        );
        return;
    }
    let why = if built.is_some() {
        "web/dist is older than web/src"
    } else {
        "web/dist is missing"
    };
    println!(
        "cargo:warning=building the web client ({why}): npm ci && npm run build in web/, about a minute"
    );
    let started = Instant::now();
    if !web.join("node_modules").is_dir() && !run(npm, &["ci", "--no-audit", "--no-fund"], web) {
        return;
    }
    if run(npm, &["run", "build"], web) {
        println!(
            "cargo:warning=web client built into web/dist in {:.0} s; it is embedded in this binary",
            started.elapsed().as_secs_f64()
        );
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of a file or of anything in a folder.
fn newest(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    let Ok(entries) = fs::read_dir(path) else {
        return own;
    };
    entries
        .flatten()
        .filter_map(|entry| newest(&entry.path()))
        .chain(own)
        .max()
}

fn run(program: &str, args: &[&str], dir: &Path) -> bool {
    // npm's output goes to stderr: on stdout, cargo would read it for `cargo:` directives.
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(status) if status.success() => true,
        Ok(status) => {
            println!(
                "cargo:warning=`{program} {}` in web/ failed ({status}); the web client may be missing",
                args.join(" ")
            );
            false
        }
        Err(err) => {
            println!("cargo:warning=could not run {program}: {err}");
            false
        }
    }
}
