//! The `nexus-chat` binary: parses the command line and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A missing .env is normal; a malformed one is reported below by the setting it breaks.
    let _ = dotenvy::dotenv();
    let cli = nexus_chat::config::Cli::parse();
    match nexus_chat::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nexus-chat: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
