//! Builds the web client (`web/dist`) as part of `cargo build --release`, so that
//! `cargo run --release` on a fresh clone serves the UI at `/`. Debug builds (tests) skip it;
//! `NEXUS_SKIP_WEB_BUILD=1` skips it too. Without Node.js the server still builds and says how
//! to get the client.

use std::{path::Path, process::Command};

fn main() {
    for path in [
        "web/src",
        "web/public",
        "web/index.html",
        "web/package.json",
        "web/package-lock.json",
        "web/vite.config.js",
    ] {
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
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        println!(
            "cargo:warning=Node.js/npm not found: the web client was not built (install Node 20+ and rebuild)"
        );
        return;
    }
    // Cargo shows a build script's output only as warnings; say what the wait is for.
    let install = !web.join("node_modules").is_dir();
    println!(
        "cargo:warning=building the web client in web/ ({}npm run build); set NEXUS_SKIP_WEB_BUILD=1 to skip it",
        if install { "npm ci, then " } else { "" }
    );
    if install && !run(npm, &["ci", "--no-audit", "--no-fund"], web) {
        return;
    }
    if run(npm, &["run", "build"], web) {
        println!("cargo:warning=web client built into web/dist");
    }
}

fn run(program: &str, args: &[&str], dir: &Path) -> bool {
    match Command::new(program).args(args).current_dir(dir).status() {
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
