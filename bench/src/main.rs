//! `nexus-bench`: a Socket.io load generator for Nexus Chat and its Node.js baseline.
//!
//! Each subcommand runs one scenario against a list of server URLs, prints one JSON result on
//! stdout (a human summary on stderr) and can append it to a results file; `report` turns a
//! results file into `docs/benchmarks.md` and SVG plots.

mod context;
mod pgstat;
mod procstat;
mod redisstat;
mod report;
mod scenario;
mod sio;
mod stats;
mod svg;
mod users;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "nexus-bench",
    about = "Socket.io load generator for Nexus Chat"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register and log in a pool of users, written to a JSON file for the scenarios.
    Users(UsersArgs),
    /// N authenticated idle sockets: connect latency, failures, server RSS per connection.
    Connections(scenario::connections::Args),
    /// Direct messages at a fixed open-loop rate: ack and delivery latency, loss, CPU per 1k.
    Dm(scenario::dm::DmArgs),
    /// Steps the DM rate up until p99 delivery exceeds a bound or a message is lost.
    Ramp(scenario::dm::RampArgs),
    /// N users connect within T seconds: failures, time to settle, server CPU.
    Storm(scenario::storm::Args),
    /// `message:history` paging over a large seeded conversation set.
    History(scenario::history::Args),
    /// Group rooms: `room:send` at a fixed rate, delivery to every member, CPU per 1k deliveries.
    Rooms(scenario::rooms::Args),
    /// Readers marking every direct message read on arrival: mark ack latency, CPU, batching.
    Read(scenario::read::Args),
    /// Typists in rooms and direct pairs: typing delivery latency, CPU per 1k events.
    Typing(scenario::typing::Args),
    /// Writes the Markdown report and SVG plots from a results file.
    Report(report::Args),
    /// Prints N free TCP ports on 127.0.0.1, one per line (for the runner script).
    FreePorts {
        /// How many.
        count: usize,
    },
    /// Waits until `GET /ready` answers 200 on every URL.
    WaitReady {
        /// Server base URLs (comma separated).
        #[arg(long, value_delimiter = ',', required = true)]
        urls: Vec<String>,
        /// Seconds before giving up.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
}

#[derive(Debug, Args)]
struct UsersArgs {
    /// Server base URLs (comma separated), used round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    urls: Vec<String>,
    /// How many users.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Username prefix (3-32 characters in total: letters, digits, _ . -).
    #[arg(long)]
    prefix: Option<String>,
    /// Password of every user.
    #[arg(long, default_value = "bench-password-1")]
    password: String,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(run(cli));
    // Thousands of sockets may still be open: do not wait for their tasks to wind down.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nexus-bench: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    sio::now_us();
    match cli.command {
        Command::Users(a) => {
            let endpoints = context::endpoints(&a.urls)?;
            let prefix = a
                .prefix
                .unwrap_or_else(|| format!("b{:06x}_", rand::random::<u32>() & 0xff_ffff));
            let users =
                users::create(&endpoints, a.count, &prefix, &a.password, a.concurrency).await?;
            users::save(&a.out, &users)
        }
        Command::Connections(a) => scenario::connections::run(a).await,
        Command::Dm(a) => scenario::dm::run_dm(a).await,
        Command::Ramp(a) => scenario::dm::run_ramp(a).await,
        Command::Storm(a) => scenario::storm::run(a).await,
        Command::History(a) => scenario::history::run(a).await,
        Command::Rooms(a) => scenario::rooms::run(a).await,
        Command::Read(a) => scenario::read::run(a).await,
        Command::Typing(a) => scenario::typing::run(a).await,
        Command::Report(a) => report::run(a),
        Command::FreePorts { count } => {
            // Hold every listener until all are chosen so the ports are distinct.
            let listeners: Vec<std::net::TcpListener> = (0..count)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<_, _>>()?;
            for l in &listeners {
                println!("{}", l.local_addr()?.port());
            }
            Ok(())
        }
        Command::WaitReady { urls, timeout } => wait_ready(&urls, timeout).await,
    }
}

async fn wait_ready(urls: &[String], timeout: f64) -> anyhow::Result<()> {
    let endpoints = context::endpoints(urls)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout);
    for ep in &endpoints {
        loop {
            let ok = client
                .get(format!("{}/ready", ep.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if std::time::Instant::now() >= deadline {
                anyhow::bail!("{} not ready after {timeout} s", ep.base);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
