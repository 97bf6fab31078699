//! What PostgreSQL spends on one side's database during a scenario: the CPU time of the
//! backends connected to that database (their PIDs from `pg_stat_activity`, read from
//! `/proc` like the servers') and the database's transaction and row-write counters from
//! `pg_stat_database`. Read through `psql`, so the generator needs no PostgreSQL driver.

use std::{process::Command, time::Duration};

use serde_json::{Value, json};

use crate::procstat;

/// Transactions the probe's own `psql` sessions add between two readings (measured with idle
/// servers).
const PROBE_TRANSACTIONS: f64 = 4.0;

/// One reading.
#[derive(Debug, Clone, Default)]
pub struct PgSample {
    /// Backends connected to the database (the servers' pools), excluding this probe.
    pub pids: Vec<u32>,
    /// Their summed user + system CPU seconds.
    pub cpu_secs: f64,
    /// `xact_commit + xact_rollback`: statements outside explicit transactions count one each.
    pub transactions: f64,
    /// `tup_inserted + tup_updated + tup_deleted`.
    pub rows_written: f64,
}

fn psql(url: &str, sql: &str) -> Option<String> {
    let out = Command::new("psql")
        .args([url, "-XtAq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads the backends and counters of the database `url` names; None without `psql` or access.
pub fn sample(url: &str) -> Option<PgSample> {
    let pids: Vec<u32> = psql(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )?
    .lines()
    .filter_map(|l| l.trim().parse().ok())
    .collect();
    let counters = psql(
        url,
        "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted \
         FROM pg_stat_database WHERE datname = current_database()",
    )?;
    let mut it = counters.trim().split('|');
    let transactions = it.next()?.trim().parse().ok()?;
    let rows_written = it.next()?.trim().parse().ok()?;
    Some(PgSample {
        cpu_secs: procstat::sample(&pids).cpu_secs,
        pids,
        transactions,
        rows_written,
    })
}

/// PostgreSQL's side of a run: CPU of the backends seen at the start (still alive at the end),
/// plus all the CPU of backends that appeared since (a pool that grew during the run), and the
/// counter deltas. The counters are read after a pause: backends report their statistics when
/// idle, at most about once a second. The probe's own `psql` sessions are subtracted: with idle
/// servers, the two readings differ by 4 transactions.
pub async fn delta(url: &str, before: &PgSample) -> Option<Value> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = sample(url)?;
    let cpu = procstat::sample(&before.pids).cpu_secs;
    let cpu_before = before.cpu_secs;
    let new_pids: Vec<u32> = after
        .pids
        .iter()
        .copied()
        .filter(|p| !before.pids.contains(p))
        .collect();
    let cpu_new = procstat::sample(&new_pids).cpu_secs;
    Some(json!({
        "backends": before.pids.len(),
        "backends_opened": new_pids.len(),
        "cpu_secs": (cpu - cpu_before).max(0.0) + cpu_new,
        "transactions": (after.transactions - before.transactions - PROBE_TRANSACTIONS).max(0.0),
        "rows_written": (after.rows_written - before.rows_written).max(0.0),
    }))
}
