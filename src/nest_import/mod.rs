//! `nexus-chat import-nest`: copies the accounts and direct messages of the NestJS app this server
//! replaces into the database the usual settings name. It reads everything first, decides
//! everything (`plan`), prints what it will do, and only then writes — so a dry run is the same
//! run without its last step, and a run that must fail fails before writing anything.

mod plan;
mod report;
mod source;

use std::{io::IsTerminal, time::Duration};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use plan::{KEY_PREFIX, Plan, Target};
pub use plan::{OnConflict, OnInvalid};
use source::Sources;

use crate::{
    config::{Config, Database},
    store::Store,
};

/// Messages per write: one group commit each, the server's own insert path.
const MESSAGES_PER_BATCH: usize = 500;
/// Accounts per write.
const USERS_PER_BATCH: usize = 500;

/// Options of `import-nest`.
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("sources")
        .args(["source_database_url", "source_redis_url"])
        .required(true)
        .multiple(true)
))]
pub struct ImportArgs {
    /// The old app's PostgreSQL (its DB_* settings as a URL), e.g. postgres://postgres:secret@localhost:5432/chat_db. Accounts come only from here.
    #[arg(long, value_name = "URL")]
    pub source_database_url: Option<String>,
    /// The old app's Redis (its REDIS_HOST/REDIS_PORT as a URL), e.g. redis://localhost:6379. Its history lists hold the old app's only copy of most messages.
    #[arg(long, value_name = "URL")]
    pub source_redis_url: Option<String>,
    /// Read everything and print what would be imported, without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// What to do with a username that another account has in another letter case (here usernames are unique without regard to case).
    #[arg(long, value_enum, default_value = "fail", value_name = "POLICY")]
    pub on_conflict: OnConflict,
    /// What to do with a username our rules refuse (3 to 32 characters: letters, digits, _ . -).
    #[arg(long, value_enum, default_value = "rename", value_name = "POLICY")]
    pub on_invalid_username: OnInvalid,
    /// Where the old app's history lists start; change it only if its Redis client had a keyPrefix.
    #[arg(long, default_value = "chat:history:", value_name = "PREFIX")]
    pub source_redis_key_prefix: String,
    /// Time zone of the old database's timestamps without a zone (default: that server's TimeZone setting, which the old app wrote in).
    #[arg(long, value_name = "ZONE")]
    pub source_time_zone: Option<String>,
}

/// Text shown after the options in `nexus-chat import-nest --help`.
pub const HELP: &str = "\
What it does:
  Copies every account of the NestJS app (id, username, bcrypt hash and creation time, so users
  sign in with their old passwords and old tokens still name them) and every direct message it
  can find: the Redis history lists (chat:history:<idA>:<idB>, the newest 100 per pair) and any
  rows of the PostgreSQL messages table. Messages get new ids and keep their createdAt; they are
  stored oldest first, so history shows them in order.

Target:
  The database the usual settings name: DATABASE_URL, or DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD/
  DB_NAME, or else the embedded SQLite file in DATA_DIR. Set them in the environment or .env, or
  give them before the subcommand (nexus-chat --database-url URL import-nest ...). Migrations are
  applied first. With REDIS_URL set, the history cache of every imported conversation is dropped
  so running instances read it from the database again.

Duplicates and re-runs:
  One message can be in several places (both directions' lists, the table); it is imported once.
  Two messages are the same when sender, receiver, content and createdAt (to the millisecond)
  agree; the old ids cannot tell (they were Date.now() and shared by bursts). Copies within one
  list are kept: they were sent twice. Running the import again imports nothing twice, so it can
  be repeated at the cut-over to pick up what arrived since.

Usernames:
  Usernames here are unique without regard to case; the old app's were not. A name taken in
  another case (by an account already in the target, or by an older account of the old app) is a
  conflict: --on-conflict fail (default) imports nothing and lists them all, skip leaves the
  account out, suffix imports it as name_2. A name our rules refuse is renamed by default: each
  refused character becomes _, short names are padded with _, long ones cut to 32 characters
  (\"al ice\" signs in as \"al_ice\"). Every conflict and rename is listed, with the new name.

Not imported (counted and listed):
  group rooms and their messages (this server has direct messages only), messages whose sender
  or receiver was not imported, messages to oneself, entries that cannot be read, the status
  column (presence is live here).

Start with --dry-run: it prints the same report and writes nothing. The exit status is non-zero
when nothing could be imported because of a conflict (see --on-conflict) or an error.";

/// Runs the import and prints its report to stdout.
pub async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    let progress = Progress::new();
    let sources = Sources {
        database_url: args.source_database_url.as_deref(),
        redis_url: args.source_redis_url.as_deref(),
        redis_key_prefix: &args.source_redis_key_prefix,
        time_zone: args.source_time_zone.as_deref(),
    };
    let data = source::read(&sources, &|what| progress.status(what)).await?;
    progress.status("reading the target database");
    let (store, target) = open_target(config, args.dry_run).await?;
    let plan = plan::plan(&data, &target, args.on_conflict, args.on_invalid_username);
    progress.clear();

    let mut out = report::Report::default();
    out.sources(&data, &sources);
    out.target(&describe_target(config), target.users.len());
    out.plan(
        &plan,
        data.users.is_some(),
        args.on_conflict,
        args.on_invalid_username,
    );
    out.groups(&data);
    print!("{}", out.text());

    if plan.must_fail() {
        bail!(
            "nothing was imported: {} username(s) above need a decision that a flag says to fail on; \
             choose --on-conflict skip or suffix (or --on-invalid-username rename or skip)",
            plan.issues.iter().filter(|i| i.fatal).count()
        );
    }
    if args.dry_run {
        println!(
            "\nDry run: nothing was written. Without --dry-run this imports {} account(s) and {} message(s).",
            plan.new_users.len(),
            plan.new_messages.len()
        );
        return Ok(());
    }
    let Some(store) = store else {
        bail!("the target database is not open");
    };
    let written = write(&store, &plan, &progress).await?;
    let cache = drop_history_cache(config, &plan).await;
    println!(
        "\nDone: imported {} account(s) and {} message(s){}.",
        written.users,
        written.messages,
        if written.raced > 0 {
            format!(
                " ({} message(s) were stored meanwhile by another run)",
                written.raced
            )
        } else {
            String::new()
        }
    );
    match cache {
        Ok(Some(n)) => println!("Dropped the Redis history cache of {n} conversation(s)."),
        Ok(None) => {}
        Err(err) => bail!(
            "the data is imported, but the Redis history cache could not be dropped ({err:#}): \
             running instances may show conversations without the imported messages until it is. \
             Run the import again once Redis answers (it imports nothing twice and retries this)"
        ),
    }
    Ok(())
}

/// Opens the target. A dry run neither creates the SQLite file nor migrates: a database without
/// the tables is reported as empty.
async fn open_target(config: &Config, dry_run: bool) -> anyhow::Result<(Option<Store>, Target)> {
    if dry_run
        && let Database::Sqlite(path) = &config.database
        && !path.exists()
    {
        return Ok((None, Target::default()));
    }
    let store = Store::connect(config)
        .await
        .context("could not open the target database")?;
    if dry_run {
        if !store.has_schema().await? {
            return Ok((Some(store), Target::default()));
        }
    } else {
        store
            .migrate()
            .await
            .context("could not apply migrations to the target database")?;
    }
    let users = store.all_usernames().await?;
    let imported = store
        .client_msg_ids_with_prefix(KEY_PREFIX)
        .await?
        .into_iter()
        .collect();
    Ok((Some(store), Target { users, imported }))
}

/// The target, without credentials.
fn describe_target(config: &Config) -> String {
    match &config.database {
        Database::Sqlite(path) => format!("the SQLite database {}", path.display()),
        Database::Postgres(url) => {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
            format!("the PostgreSQL database {rest}")
        }
    }
}

struct Written {
    users: usize,
    messages: usize,
    raced: usize,
}

async fn write(store: &Store, plan: &Plan, progress: &Progress) -> anyhow::Result<Written> {
    let bar = progress.bar(
        (plan.new_users.len() + plan.new_messages.len()) as u64,
        "importing",
    );
    let mut written = Written {
        users: 0,
        messages: 0,
        raced: 0,
    };
    for batch in plan.new_users.chunks(USERS_PER_BATCH) {
        written.users += store.import_users(batch).await.map_err(|err| match err {
            crate::store::StoreError::Conflict => anyhow::anyhow!(
                "a username of this import was registered in the target while it ran; \
                 run the import again (what it wrote so far is kept, nothing is imported twice)"
            ),
            other => anyhow::Error::new(other).context("could not store the accounts"),
        })?;
        bar.inc(batch.len() as u64);
    }
    for batch in plan.new_messages.chunks(MESSAGES_PER_BATCH) {
        let stored = store
            .insert_messages(batch)
            .await
            .context("could not store the messages (run the import again to resume)")?;
        let new = stored
            .iter()
            .filter(|w| w.as_ref().is_ok_and(|w| w.created))
            .count();
        written.messages += new;
        written.raced += stored.len() - new;
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    Ok(written)
}

/// Drops the Redis history cache of every imported conversation: imported messages are stored
/// behind the cache's back, and a cached page claims to be complete. `None` without REDIS_URL.
async fn drop_history_cache(config: &Config, plan: &Plan) -> anyhow::Result<Option<usize>> {
    use fred::prelude::{Builder, ClientLike, Config as RedisConfig, KeysInterface};
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    if plan.conversations.is_empty() {
        return Ok(Some(0));
    }
    let client = Builder::from_config(RedisConfig::from_url(url)?)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(5))
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(5))
        .build()?;
    client.init().await?;
    let keys = crate::cluster::Keys::new(&config.redis_prefix, "import");
    for &(lo, hi) in &plan.conversations {
        // One command: both keys share the conversation's hash tag (one slot on a Redis Cluster).
        client
            .del::<i64, _>(vec![keys.history(lo, hi), keys.history_floor(lo, hi)])
            .await?;
    }
    let _ = client.quit().await;
    Ok(Some(plan.conversations.len()))
}

/// A spinner while reading and a bar while writing, on stderr, only when it is a terminal (a
/// log file or a pipe gets the report alone).
struct Progress {
    spinner: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Progress {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        Progress { spinner }
    }

    fn status(&self, what: &str) {
        if let Some(spinner) = &self.spinner {
            spinner.set_message(what.to_owned());
        }
    }

    fn clear(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }

    fn bar(&self, len: u64, what: &'static str) -> ProgressBar {
        if self.spinner.is_none() {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template("{prefix} [{wide_bar}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(what)
    }
}
