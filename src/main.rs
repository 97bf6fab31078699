//! The `nexus-chat` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A missing .env is normal; a malformed one is reported below by the setting it breaks.
    let _ = dotenvy::dotenv();
    let cli = nexus_chat::config::Cli::parse();
    let result = nexus_chat::runtime(&cli.settings)
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(nexus_chat::run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nexus-chat: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
