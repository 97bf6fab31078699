//! Test worlds: each test gets its own PostgreSQL database (created here, dropped on drop) or
//! SQLite file, and a server on a free port.
#![allow(dead_code)]

use std::path::PathBuf;

use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use nexus_chat::{
    app,
    config::{Cli, Config, Database},
};
use uuid::Uuid;

/// The server that test databases are created on (`TEST_DATABASE_URL`, default: local postgres).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub enum TestDb {
    Postgres { name: String, url: String },
    Sqlite { dir: PathBuf },
}

impl TestDb {
    pub async fn postgres() -> TestDb {
        let name = format!("nexus_test_{}", Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&admin_url())
            .await
            .expect("PostgreSQL must be reachable at TEST_DATABASE_URL (see scripts/test.sh)");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let base = admin_url();
        let url = format!(
            "{}/{name}",
            base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b)
        );
        TestDb::Postgres { name, url }
    }

    pub fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("nexus-test-{}", Uuid::new_v4().simple()));
        TestDb::Sqlite { dir }
    }

    /// Runs SQL on this database outside the store, as an operator at a SQL prompt would.
    pub async fn execute(&self, sql: &str) {
        match self {
            TestDb::Postgres { url, .. } => {
                let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
                conn.batch_execute(sql).await.expect("execute");
            }
            TestDb::Sqlite { dir } => {
                use diesel::{Connection, connection::SimpleConnection};
                let path = dir.join("nexus-chat.sqlite3");
                let mut conn =
                    diesel::SqliteConnection::establish(&path.to_string_lossy()).expect("open");
                conn.batch_execute(sql).expect("execute");
            }
        }
    }

    /// A configuration pointing at this database, everything else at its defaults.
    pub fn config(&self) -> Config {
        let data_dir = match self {
            TestDb::Sqlite { dir } => dir.clone(),
            TestDb::Postgres { .. } => {
                std::env::temp_dir().join(format!("nexus-test-{}", Uuid::new_v4().simple()))
            }
        };
        let cli =
            Cli::try_parse_from(["nexus-chat", "--host", "127.0.0.1", "--port", "0"]).unwrap();
        let mut settings = cli.settings;
        settings.database_url = None;
        settings.db_host = None;
        settings.redis_url = None;
        settings.redis_host = None;
        settings.jwt_secret = Some("test-secret-of-sufficient-length".into());
        settings.data_dir = data_dir;
        settings.web_dir = Some(PathBuf::from("/nonexistent"));
        settings.bcrypt_cost = 4;
        let mut config = settings.resolve().unwrap();
        if let TestDb::Postgres { url, .. } = self {
            config.database = Database::Postgres(url.clone());
        }
        config
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self {
            TestDb::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDb::Postgres { name, .. } => {
                let name = name.clone();
                // Drop runs outside async; a small runtime of its own does the cleanup.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url()).await {
                            let _ = admin
                                .batch_execute(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A server listening on a free port for one test; stopped on drop.
pub struct TestServer {
    pub base: String,
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _db: TestDb,
}

impl TestServer {
    pub async fn start(db: TestDb) -> TestServer {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: TestDb, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = db.config();
        tweak(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = app::serve(config.clone(), async {
            let _ = stopped.await;
        })
        .await
        .expect("server starts");
        TestServer {
            base: format!("http://{}", running.addr),
            config,
            stop: Some(stop),
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
