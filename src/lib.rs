//! Nexus Chat: a real-time chat server that speaks Socket.io, wire-compatible with the NestJS
//! chat app it replaces (the protocol is `docs/protocol.md`), on an embedded SQLite file or on
//! PostgreSQL + Redis as a cluster. `docs/ARCHITECTURE.md` draws the modules and the path of a message.

pub mod app;
pub mod auth;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod drain;
pub mod error;
pub mod http;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod mode;
pub mod nest_import;
pub mod presence;
pub mod socket;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod wire;

use config::{Cli, Command, Settings};

/// The runtime everything runs on: tokio's multi-threaded scheduler with `WORKER_THREADS`
/// workers (tokio's default, one per core, when unset). Built from the parsed command line, so
/// that a flag or `.env` can size it, and before anything runs on it.
pub fn runtime(settings: &Settings) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = settings.worker_threads {
        builder.worker_threads(workers as usize);
    }
    builder.enable_all().build()
}

/// Runs the command line: `serve` (default), `migrate`, `import-nest` or `user`.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.settings.resolve()?;
    telemetry::init(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            app::open_store(&config).await?;
            Ok(())
        }
        Command::ImportNest(args) => nest_import::run(&config, args).await,
        Command::User(command) => auth::run_user_command(&config, command).await,
        Command::Serve => {
            let running = app::serve(config, app::shutdown_signal()).await?;
            running.done.await?
        }
    }
}
