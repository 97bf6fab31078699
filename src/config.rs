//! Settings: parsed once at start-up from the command line, the environment and an optional `.env`.
//!
//! Both our variable names and the NestJS app's (`DB_*`, `REDIS_HOST`/`REDIS_PORT`) are accepted,
//! so an existing deployment's `.env` keeps working. Every invalid value stops start-up with one
//! line that names the variable.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{listener::ConnectionLimits, store::rooms::RoomLimits};

/// Command line of the `nexus-chat` binary.
#[derive(Debug, Parser)]
#[command(
    name = "nexus-chat",
    version,
    about = "Real-time chat server speaking Socket.io"
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Every setting, also readable from the environment or `.env`.
    #[command(flatten)]
    pub settings: Settings,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve HTTP and Socket.io (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Copy the accounts and direct messages of the NestJS app into this server's database.
    #[command(after_long_help = crate::nest_import::HELP)]
    ImportNest(crate::nest_import::ImportArgs),
    /// Manage accounts: disable or enable one (a disabled account cannot sign in, its tokens
    /// are refused and its open sockets are closed on every instance).
    #[command(subcommand)]
    User(UserCommand),
}

/// `nexus-chat user …`.
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Disable an account: it cannot sign in, its tokens are refused (401, connect_error
    /// Unauthorized) and its sockets are closed within ACCESS_REFRESH_MS on every instance.
    Disable {
        /// The account's username (any letter case).
        username: String,
    },
    /// Enable a disabled account again: it signs in, and its unexpired tokens work again.
    Enable {
        /// The account's username (any letter case).
        username: String,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Raw settings as given; [`Settings::resolve`] validates them into a [`Config`].
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0", value_parser = parse_ip("HOST"))]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000, value_parser = parse_num::<u16>("PORT"))]
    pub port: u16,
    /// PostgreSQL URL; when neither it nor DB_HOST is set, an embedded SQLite file in DATA_DIR is used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Legacy (NestJS) PostgreSQL host, used when DATABASE_URL is not set.
    #[arg(long, env = "DB_HOST")]
    pub db_host: Option<String>,
    /// Legacy PostgreSQL port.
    #[arg(long, env = "DB_PORT", default_value_t = 5432, value_parser = parse_num::<u16>("DB_PORT"))]
    pub db_port: u16,
    /// Legacy PostgreSQL user.
    #[arg(long, env = "DB_USERNAME", default_value = "postgres")]
    pub db_username: String,
    /// Legacy PostgreSQL password.
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true)]
    pub db_password: Option<String>,
    /// Legacy PostgreSQL database name (DB_DATABASE is accepted too).
    #[arg(long, env = "DB_NAME")]
    pub db_name: Option<String>,
    /// Alias of DB_NAME.
    #[arg(long, env = "DB_DATABASE")]
    pub db_database: Option<String>,
    /// Redis URL; setting it (or REDIS_HOST) turns on cluster mode. redis-cluster://host:port for a Redis Cluster.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Legacy Redis host, used when REDIS_URL is not set.
    #[arg(long, env = "REDIS_HOST")]
    pub redis_host: Option<String>,
    /// Legacy Redis port.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379, value_parser = parse_num::<u16>("REDIS_PORT"))]
    pub redis_port: u16,
    /// Prefix of every Redis key and pub/sub channel, so deployments can share one Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "nexus")]
    pub redis_prefix: String,
    /// HS256 secret for access tokens. Required in cluster mode; generated and kept in DATA_DIR otherwise.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Token lifetime: seconds, or a number with s, m, h or d (as the NestJS app: "1d").
    #[arg(long, env = "JWT_EXPIRES_IN", default_value = "1d", value_parser = parse_duration("JWT_EXPIRES_IN"))]
    pub jwt_expires_in: Duration,
    /// bcrypt cost for new password hashes (4-31).
    #[arg(long, env = "BCRYPT_COST", default_value_t = 10, value_parser = parse_range("BCRYPT_COST", 4, 31))]
    pub bcrypt_cost: u32,
    /// Allowed browser origins, comma-separated, or * for any.
    #[arg(long, env = "CORS_ORIGINS", default_value = "*")]
    pub cors_origins: String,
    /// Folder for the embedded database and the generated JWT secret.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Folder of a built web client to serve at / instead of the one embedded in the binary (e.g. ./web/dist).
    #[arg(long, env = "WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Largest Socket.io packet (a polling body, a WebSocket message or frame) and HTTP body accepted, in bytes.
    #[arg(long, env = "MAX_PAYLOAD_BYTES", default_value_t = 1_000_000, value_parser = parse_range("MAX_PAYLOAD_BYTES", 1024, 100_000_000))]
    pub max_payload_bytes: u32,
    /// Longest message content, in characters after trimming (and at most 4 times as many before).
    #[arg(long, env = "MAX_MESSAGE_CHARS", default_value_t = 10_000, value_parser = parse_range("MAX_MESSAGE_CHARS", 1, 1_000_000))]
    pub max_message_chars: u32,
    /// Burst of `message:send` a socket may make before being rate limited.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 200, value_parser = parse_range("RATE_LIMIT_BURST", 1, 1_000_000))]
    pub rate_limit_burst: u32,
    /// Sustained `message:send` per second per socket.
    #[arg(long, env = "RATE_LIMIT_PER_SEC", default_value_t = 50, value_parser = parse_range("RATE_LIMIT_PER_SEC", 1, 1_000_000))]
    pub rate_limit_per_sec: u32,
    /// Burst of `message:send` and `room:send` one user may make across all their sockets (on
    /// every instance, through Redis in cluster mode) before being rate limited; 0 turns it off.
    #[arg(long, env = "USER_RATE_LIMIT_BURST", default_value_t = 300, value_parser = parse_range("USER_RATE_LIMIT_BURST", 0, 1_000_000))]
    pub user_rate_limit_burst: u32,
    /// Sustained sends per second per user, across all their sockets.
    #[arg(long, env = "USER_RATE_LIMIT_PER_SEC", default_value_t = 75, value_parser = parse_range("USER_RATE_LIMIT_PER_SEC", 1, 1_000_000))]
    pub user_rate_limit_per_sec: u32,
    /// How often each instance reads the database's log of disabled, enabled and deleted
    /// accounts, in milliseconds: a disabled account's sockets close within about this long.
    #[arg(long, env = "ACCESS_REFRESH_MS", default_value_t = 1000, value_parser = parse_range("ACCESS_REFRESH_MS", 50, 600_000))]
    pub access_refresh_ms: u32,
    /// Messages per conversation kept in the Redis history cache (cluster mode; 0 disables it).
    #[arg(long, env = "HISTORY_CACHE_SIZE", default_value_t = 100, value_parser = parse_range("HISTORY_CACHE_SIZE", 0, 100_000))]
    pub history_cache_size: u32,
    /// Seconds after which a silent instance's sockets are considered gone (cluster mode).
    #[arg(long, env = "PRESENCE_TTL_SECS", default_value_t = 15, value_parser = parse_range("PRESENCE_TTL_SECS", 2, 3600))]
    pub presence_ttl_secs: u32,
    /// Name of this instance (default: random); shown by /api/instance.
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Database connections per instance (PostgreSQL: 2 of them for the two writers, at least 4 in all; SQLite: at most 8).
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 16, value_parser = parse_range("DB_POOL_SIZE", 1, 1000))]
    pub db_pool_size: u32,
    /// Upper bound on any database operation, in milliseconds; past it the caller gets `unavailable`.
    #[arg(long, env = "DB_TIMEOUT_MS", default_value_t = 5000, value_parser = parse_range("DB_TIMEOUT_MS", 100, 600_000))]
    pub db_timeout_ms: u32,
    /// Failed logins for one username before it is throttled (exponential back-off, 429).
    #[arg(long, env = "LOGIN_FAILURES_BEFORE_BACKOFF", default_value_t = 5, value_parser = parse_range("LOGIN_FAILURES_BEFORE_BACKOFF", 1, 1_000_000))]
    pub login_failures_before_backoff: u32,
    /// Failed logins from one client address before it is throttled.
    #[arg(long, env = "LOGIN_IP_FAILURES_BEFORE_BACKOFF", default_value_t = 20, value_parser = parse_range("LOGIN_IP_FAILURES_BEFORE_BACKOFF", 1, 1_000_000))]
    pub login_ip_failures_before_backoff: u32,
    /// First back-off in seconds; it doubles with each further failure.
    #[arg(long, env = "LOGIN_BACKOFF_BASE_SECS", default_value_t = 1, value_parser = parse_range("LOGIN_BACKOFF_BASE_SECS", 1, 86_400))]
    pub login_backoff_base_secs: u32,
    /// Longest back-off in seconds.
    #[arg(long, env = "LOGIN_BACKOFF_MAX_SECS", default_value_t = 900, value_parser = parse_range("LOGIN_BACKOFF_MAX_SECS", 1, 86_400))]
    pub login_backoff_max_secs: u32,
    /// Sockets one user may have open at once (all tabs, all instances).
    #[arg(long, env = "MAX_SOCKETS_PER_USER", default_value_t = 32, value_parser = parse_range("MAX_SOCKETS_PER_USER", 1, 100_000))]
    pub max_sockets_per_user: u32,
    /// Socket.io handshakes in progress at once from one client address.
    #[arg(long, env = "MAX_HANDSHAKES_PER_IP", default_value_t = 64, value_parser = parse_range("MAX_HANDSHAKES_PER_IP", 1, 1_000_000))]
    pub max_handshakes_per_ip: u32,
    /// Most members of one room.
    #[arg(long, env = "ROOM_MAX_MEMBERS", default_value_t = 1000, value_parser = parse_range("ROOM_MAX_MEMBERS", 2, 10_000))]
    pub room_max_members: u32,
    /// Most rooms one user may be a member of.
    #[arg(long, env = "MAX_ROOMS_PER_USER", default_value_t = 500, value_parser = parse_range("MAX_ROOMS_PER_USER", 1, 100_000))]
    pub max_rooms_per_user: u32,
    /// Outgoing packets buffered per socket; a socket whose buffer is full is disconnected.
    #[arg(long, env = "SOCKET_BUFFER_PACKETS", default_value_t = 4096, value_parser = parse_range("SOCKET_BUFFER_PACKETS", 16, 1_000_000))]
    pub socket_buffer_packets: u32,
    /// Outgoing bytes queued per socket (not yet written to its connection); past it the socket is disconnected. At least twice MAX_PAYLOAD_BYTES.
    #[arg(long, env = "SOCKET_BUFFER_BYTES", default_value_t = 8 << 20, value_parser = parse_range("SOCKET_BUFFER_BYTES", 64 << 10, 1 << 30))]
    pub socket_buffer_bytes: u32,
    /// Open TCP connections (HTTP and WebSocket) at once; at it the oldest idle HTTP connection makes room, else only /health and /ready are answered. 0: 90% of the open-file limit.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 0, value_parser = parse_range("MAX_CONNECTIONS", 0, 10_000_000))]
    pub max_connections: u32,
    /// Open TCP connections from one client address (an IPv6 client: its /64); 0: no cap.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 256, value_parser = parse_range("MAX_CONNECTIONS_PER_IP", 0, 10_000_000))]
    pub max_connections_per_ip: u32,
    /// Seconds a client has to send a complete request head (also the keep-alive wait for the next one).
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = parse_range("HTTP_HEADER_READ_TIMEOUT_SECS", 1, 3600))]
    pub http_header_read_timeout_secs: u32,
    /// Seconds without a byte either way after which a connection that is not a WebSocket is closed (above the 25 s long-poll).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT_SECS", default_value_t = 60, value_parser = parse_range("HTTP_IDLE_TIMEOUT_SECS", 30, 86_400))]
    pub http_idle_timeout_secs: u32,
    /// Log format: text or json (filter with RUST_LOG).
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_enum)]
    pub log_format: LogFormat,
    /// Threads that run connections and handlers (default: one per CPU core). Several
    /// instances on one machine: give each cores ÷ instances, at least 1 (start-multi.sh does).
    #[arg(long, env = "WORKER_THREADS", value_parser = parse_range("WORKER_THREADS", 1, 1024))]
    pub worker_threads: Option<u32>,
}

/// Where messages and accounts live.
#[derive(Debug, Clone)]
pub enum Database {
    /// A PostgreSQL server (its URL).
    Postgres(String),
    /// The embedded SQLite file.
    Sqlite(PathBuf),
}

/// Validated configuration the application is built from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub host: IpAddr,
    /// Listen port.
    pub port: u16,
    /// Storage backend.
    pub database: Database,
    /// Redis URL when in cluster mode.
    pub redis_url: Option<String>,
    /// Key and channel prefix in Redis.
    pub redis_prefix: String,
    /// JWT signing secret; `None` means "generate one in `data_dir`".
    pub jwt_secret: Option<String>,
    /// Token lifetime.
    pub jwt_ttl: Duration,
    /// bcrypt cost.
    pub bcrypt_cost: u32,
    /// Allowed origins; empty means any.
    pub cors_origins: Vec<String>,
    /// Data folder.
    pub data_dir: PathBuf,
    /// Web client folder overriding the embedded client.
    pub web_dir: Option<PathBuf>,
    /// Max payload in bytes.
    pub max_payload: u32,
    /// Max message characters.
    pub max_message_chars: usize,
    /// Token bucket size.
    pub rate_limit_burst: u32,
    /// Token bucket refill per second.
    pub rate_limit_per_sec: u32,
    /// Per-user send budget (0: off).
    pub user_rate_limit_burst: u32,
    /// Per-user refill per second.
    pub user_rate_limit_per_sec: u32,
    /// How often the access log is polled.
    pub access_refresh: Duration,
    /// History cache size per conversation.
    pub history_cache_size: usize,
    /// Presence lease.
    pub presence_ttl: Duration,
    /// This instance's name.
    pub instance_id: String,
    /// Pool size.
    pub db_pool_size: u32,
    /// Database timeout.
    pub db_timeout: Duration,
    /// Login throttling.
    pub login_throttle: ThrottleConfig,
    /// Sockets per user.
    pub max_sockets_per_user: u32,
    /// Concurrent handshakes per address.
    pub max_handshakes_per_ip: u32,
    /// Outgoing packets buffered per socket.
    pub socket_buffer_packets: u32,
    /// Outgoing bytes queued per socket.
    pub socket_buffer_bytes: u64,
    /// Room sizes.
    pub rooms: RoomLimits,
    /// HTTP connection caps and timeouts.
    pub connections: ConnectionLimits,
    /// Log format.
    pub log_format: LogFormat,
}

/// When failed logins are throttled.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// Free failures per username.
    pub per_user: u32,
    /// Free failures per client address.
    pub per_address: u32,
    /// First back-off.
    pub base: Duration,
    /// Longest back-off.
    pub max: Duration,
}

impl Settings {
    /// Checks the combinations the individual parsers cannot, and picks the storage backend.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let database = match (self.database_url, self.db_host) {
            (Some(url), _) if !url.trim().is_empty() => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    bail!("DATABASE_URL must be a postgres:// or postgresql:// URL");
                }
                Database::Postgres(url)
            }
            (_, Some(host)) if !host.trim().is_empty() => {
                let name = self
                    .db_name
                    .or(self.db_database)
                    .unwrap_or_else(|| "postgres".into());
                let auth = match self.db_password.filter(|p| !p.is_empty()) {
                    Some(password) => {
                        format!("{}:{}", encode(&self.db_username), encode(&password))
                    }
                    None => encode(&self.db_username),
                };
                Database::Postgres(format!(
                    "postgres://{auth}@{host}:{}/{}",
                    self.db_port,
                    encode(&name)
                ))
            }
            _ => Database::Sqlite(self.data_dir.join("nexus-chat.sqlite3")),
        };
        let redis_url = match (self.redis_url, self.redis_host) {
            (Some(url), _) if !url.trim().is_empty() => {
                let schemes = [
                    "redis://",
                    "rediss://",
                    "redis-cluster://",
                    "rediss-cluster://",
                ];
                if !schemes.iter().any(|s| url.starts_with(s)) {
                    bail!(
                        "REDIS_URL must be a redis://, rediss://, redis-cluster:// or rediss-cluster:// URL"
                    );
                }
                Some(cluster_seeds_as_nodes(&url))
            }
            (_, Some(host)) if !host.trim().is_empty() => {
                Some(format!("redis://{host}:{}", self.redis_port))
            }
            _ => None,
        };
        if u64::from(self.socket_buffer_bytes) < 2 * u64::from(self.max_payload_bytes) {
            // One event can be as large as a packet: a smaller bound would disconnect a reader
            // for a single large message before its connection had a chance to write it.
            bail!(
                "SOCKET_BUFFER_BYTES ({}) must be at least twice MAX_PAYLOAD_BYTES ({})",
                self.socket_buffer_bytes,
                self.max_payload_bytes
            );
        }
        let jwt_secret = self.jwt_secret.filter(|s| !s.is_empty());
        if redis_url.is_some() {
            if matches!(database, Database::Sqlite(_)) {
                bail!(
                    "REDIS_URL is set but no DATABASE_URL: cluster mode needs a shared PostgreSQL database"
                );
            }
            if jwt_secret.is_none() {
                bail!(
                    "JWT_SECRET must be set in cluster mode (REDIS_URL): every instance must share it"
                );
            }
        }
        if jwt_secret.as_ref().is_some_and(|s| s.len() < 8) {
            bail!("JWT_SECRET is too short: use at least 8 characters (32 or more recommended)");
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            bail!("REDIS_PREFIX must be a non-empty word without spaces");
        }
        let cors_origins = self
            .cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty() && *o != "*")
            .map(str::to_owned)
            .collect::<Vec<_>>();
        for origin in &cors_origins {
            axum::http::HeaderValue::from_str(origin)
                .with_context(|| format!("CORS_ORIGINS has an invalid origin {origin:?}"))?;
        }
        let instance_id = self
            .instance_id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
        Ok(Config {
            host: self.host,
            port: self.port,
            database,
            redis_url,
            redis_prefix: self.redis_prefix,
            jwt_secret,
            jwt_ttl: self.jwt_expires_in,
            bcrypt_cost: self.bcrypt_cost,
            cors_origins,
            data_dir: self.data_dir,
            web_dir: self.web_dir.filter(|d| !d.as_os_str().is_empty()),
            max_payload: self.max_payload_bytes,
            max_message_chars: self.max_message_chars as usize,
            rate_limit_burst: self.rate_limit_burst,
            rate_limit_per_sec: self.rate_limit_per_sec,
            user_rate_limit_burst: self.user_rate_limit_burst,
            user_rate_limit_per_sec: self.user_rate_limit_per_sec,
            access_refresh: Duration::from_millis(self.access_refresh_ms.into()),
            history_cache_size: self.history_cache_size as usize,
            presence_ttl: Duration::from_secs(self.presence_ttl_secs.into()),
            instance_id,
            db_pool_size: self.db_pool_size,
            db_timeout: Duration::from_millis(self.db_timeout_ms.into()),
            login_throttle: ThrottleConfig {
                per_user: self.login_failures_before_backoff,
                per_address: self.login_ip_failures_before_backoff,
                base: Duration::from_secs(self.login_backoff_base_secs.into()),
                max: Duration::from_secs(self.login_backoff_max_secs.into()),
            },
            max_sockets_per_user: self.max_sockets_per_user,
            max_handshakes_per_ip: self.max_handshakes_per_ip,
            socket_buffer_packets: self.socket_buffer_packets,
            socket_buffer_bytes: self.socket_buffer_bytes.into(),
            rooms: RoomLimits {
                max_members: self.room_max_members,
                max_rooms_per_user: self.max_rooms_per_user,
            },
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                max_per_address: self.max_connections_per_ip,
                header_read_timeout: Duration::from_secs(self.http_header_read_timeout_secs.into()),
                idle_timeout: Duration::from_secs(self.http_idle_timeout_secs.into()),
            },
            log_format: self.log_format,
        })
    }
}

impl Config {
    /// A name for the storage backend that is safe to log (no credentials).
    pub fn database_kind(&self) -> &'static str {
        match self.database {
            Database::Postgres(_) => "postgres",
            Database::Sqlite(_) => "sqlite",
        }
    }
}

/// Accepts the common `redis-cluster://host1:port1,host2:port2` form of a cluster URL by
/// rewriting it into the one fred parses, `redis-cluster://host1:port1?node=host2:port2`. Other
/// URLs are returned as they are.
fn cluster_seeds_as_nodes(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    if !scheme.ends_with("-cluster") {
        return url.to_owned();
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    let mut seeds = hosts.split(',').map(str::trim).filter(|h| !h.is_empty());
    let Some(first) = seeds.next() else {
        return url.to_owned();
    };
    let nodes: Vec<String> = seeds.map(|h| format!("node={h}")).collect();
    if nodes.is_empty() {
        return url.to_owned();
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query).filter(|q| !q.is_empty())),
        None => (tail, None),
    };
    let mut params = nodes;
    params.extend(query.map(str::to_owned));
    format!("{scheme}://{userinfo}{first}{path}?{}", params.join("&"))
}

/// Percent-encodes the characters that would break a URL's user-info or path.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse_ip(name: &'static str) -> impl Fn(&str) -> Result<IpAddr, String> + Clone {
    move |raw| {
        raw.trim()
            .parse()
            .map_err(|_| format!("{name} must be an IP address such as 0.0.0.0 or 127.0.0.1"))
    }
}

fn parse_num<T: std::str::FromStr>(
    name: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |raw| {
        raw.trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number in range, got {raw:?}"))
    }
}

fn parse_range(
    name: &'static str,
    min: u32,
    max: u32,
) -> impl Fn(&str) -> Result<u32, String> + Clone {
    move |raw| match raw.trim().parse::<u32>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{name} must be a whole number from {min} to {max}, got {raw:?}"
        )),
    }
}

fn parse_duration(name: &'static str) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |raw| {
        parse_duration_str(raw).ok_or_else(|| {
            format!("{name} must be seconds or a number with s, m, h or d (e.g. 1d), got {raw:?}")
        })
    }
}

/// Parses "3600", "60s", "15m", "12h", "1d" (the forms the NestJS app's `expiresIn` took).
pub fn parse_duration_str(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<Settings, clap::Error> {
        let mut argv = vec!["nexus-chat"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.settings)
    }

    /// Asserts that these flags are refused with a message naming `variable`.
    fn assert_refused(args: &[&str], variable: &str) {
        let err = settings(args).unwrap_err().to_string();
        assert!(err.contains(variable), "{err}");
    }

    #[test]
    fn durations_accept_the_nestjs_forms() {
        assert_eq!(parse_duration_str("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration_str("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration_str("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration_str("1 week"), None);
        assert_eq!(parse_duration_str("0"), None);
    }

    #[test]
    fn an_invalid_value_names_its_variable() {
        assert_refused(&["--bcrypt-cost", "99"], "BCRYPT_COST");
    }

    #[test]
    fn worker_threads_size_the_runtime() {
        assert_refused(&["--worker-threads", "0"], "WORKER_THREADS");
        let one = crate::runtime(&settings(&["--worker-threads", "1"]).unwrap()).unwrap();
        assert_eq!(one.metrics().num_workers(), 1);
        let three = crate::runtime(&settings(&["--worker-threads", "3"]).unwrap()).unwrap();
        assert_eq!(three.metrics().num_workers(), 3);
    }

    #[test]
    fn connection_limits_are_checked_and_carried_over() {
        assert_refused(
            &["--http-idle-timeout-secs", "10"],
            "HTTP_IDLE_TIMEOUT_SECS",
        );
        let mut s =
            settings(&["--max-connections-per-ip", "0", "--max-connections", "500"]).unwrap();
        s.database_url = None;
        s.db_host = None;
        s.redis_url = None;
        s.redis_host = None;
        let limits = s.resolve().unwrap().connections;
        assert_eq!((limits.max_per_address, limits.max_connections), (0, 500));
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
    }

    #[test]
    fn legacy_db_variables_build_a_postgres_url() {
        let mut s = settings(&[]).unwrap();
        s.database_url = None;
        s.db_host = Some("db.local".into());
        s.db_password = Some("p@ss word".into());
        s.db_database = Some("chat_db".into());
        s.redis_url = None;
        s.redis_host = None;
        let cfg = s.resolve().unwrap();
        match cfg.database {
            Database::Postgres(url) => {
                assert_eq!(
                    url,
                    "postgres://postgres:p%40ss%20word@db.local:5432/chat_db"
                )
            }
            other => panic!("expected postgres, got {other:?}"),
        }
    }

    #[test]
    fn comma_separated_cluster_seeds_become_fred_nodes() {
        assert_eq!(
            cluster_seeds_as_nodes("redis-cluster://a:7000,b:7001,c:7002"),
            "redis-cluster://a:7000?node=b:7001&node=c:7002"
        );
        assert_eq!(
            cluster_seeds_as_nodes("rediss-cluster://u:p@a:7000,b:7001?node=c:1"),
            "rediss-cluster://u:p@a:7000?node=b:7001&node=c:1"
        );
        for unchanged in [
            "redis-cluster://a:7000?node=b:7001",
            "redis://a:6379",
            "redis-cluster://a:7000",
        ] {
            assert_eq!(cluster_seeds_as_nodes(unchanged), unchanged);
        }
    }

    #[test]
    fn cluster_mode_without_a_jwt_secret_is_refused() {
        let mut s = settings(&[]).unwrap();
        s.database_url = Some("postgres://localhost/x".into());
        s.redis_url = Some("redis://localhost".into());
        s.jwt_secret = None;
        let err = s.resolve().unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
    }
}
