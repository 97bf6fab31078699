//! Reading the old NestJS app's data: its PostgreSQL schema (TypeORM: `users`, `chat_rooms`,
//! `messages`, camelCase columns quoted) and its Redis history lists
//! (`chat:history:<idA>:<idB>`, JSON entries, newest first). Nothing here writes to either.

use std::collections::HashMap;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use fred::{
    prelude::{Builder, ClientLike, Config as RedisConfig, KeysInterface, ListInterface},
    types::Value,
};
use serde_json::Value as Json;
use uuid::Uuid;

/// An account of the old app.
#[derive(Debug, Clone)]
pub struct SourceUser {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A direct message of the old app, as one place stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMessage {
    pub sender: Uuid,
    pub receiver: Uuid,
    pub content: String,
    /// Millisecond precision: the old app's JavaScript dates had no more.
    pub created_at: DateTime<Utc>,
}

/// One place that holds messages (a Redis list, or the `messages` table), oldest first. A
/// message is stored at most once per place, so copies within a place are distinct messages
/// (a user sending "ok" twice in one millisecond) while copies across places are one message.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub messages: Vec<SourceMessage>,
}

/// An entry that could not be read, and why.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub place: String,
    pub reason: String,
}

/// Everything read from the sources.
#[derive(Debug, Default)]
pub struct SourceData {
    /// `None` when no PostgreSQL source was given.
    pub users: Option<Vec<SourceUser>>,
    pub views: Vec<View>,
    pub unreadable: Vec<Unreadable>,
    pub stats: SourceStats,
}

/// Counts for the report.
#[derive(Debug, Default, Clone)]
pub struct SourceStats {
    /// Rows of `messages`, `None` when the table does not exist or PostgreSQL was not read.
    pub message_rows: Option<usize>,
    /// Rows of `messages` in a group room.
    pub group_rows: usize,
    /// Rows of `messages` with no receiver (in a room whose type is not known).
    pub rows_without_receiver: usize,
    /// `chat_rooms` of type group (`None`: no such table).
    pub group_rooms: Option<usize>,
    /// `chat_rooms` of another type (their messages carry a receiver and are imported).
    pub direct_rooms: usize,
    /// Redis keys under the prefix that are lists.
    pub redis_lists: usize,
    /// Entries in those lists.
    pub redis_entries: usize,
    /// Keys under the prefix that are not lists (left alone).
    pub redis_other_keys: Vec<String>,
    /// Whether Redis was read.
    pub redis_read: bool,
    /// The time zone `timestamp without time zone` columns were read in.
    pub time_zone: Option<String>,
}

/// Where to read from.
pub struct Sources<'a> {
    pub database_url: Option<&'a str>,
    pub redis_url: Option<&'a str>,
    pub redis_key_prefix: &'a str,
    pub time_zone: Option<&'a str>,
}

/// Reads every source given; `progress` is told what is being read.
pub async fn read(sources: &Sources<'_>, progress: &dyn Fn(&str)) -> anyhow::Result<SourceData> {
    let mut data = SourceData::default();
    if let Some(url) = sources.database_url {
        progress("reading the old PostgreSQL database");
        read_postgres(url, sources.time_zone, &mut data)
            .await
            .context("could not read the old app's PostgreSQL database")?;
    }
    if let Some(url) = sources.redis_url {
        progress("reading the old Redis history lists");
        read_redis(url, sources.redis_key_prefix, &mut data, progress)
            .await
            .context("could not read the old app's Redis")?;
    }
    Ok(data)
}

#[derive(diesel::QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
}

#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct UserRow {
    #[diesel(sql_type = Nullable<Text>)]
    id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    username: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    password: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    created_ms: Option<i64>,
}

#[derive(diesel::QueryableByName)]
struct MessageRow {
    #[diesel(sql_type = Nullable<Text>)]
    row_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    sender: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    receiver: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    room_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    content: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    created_ms: Option<i64>,
}

/// The old schema's tables, as `table → column → data type`.
type Columns = HashMap<String, HashMap<String, String>>;

async fn read_postgres(
    url: &str,
    time_zone: Option<&str>,
    data: &mut SourceData,
) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .context("could not connect")?;
    let rows: Vec<ColumnRow> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                data_type::text AS data_type \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() \
           AND table_name IN ('users', 'chat_rooms', 'messages')",
    )
    .load(&mut conn)
    .await?;
    let mut columns = Columns::new();
    for row in rows {
        columns
            .entry(row.table_name)
            .or_default()
            .insert(row.column_name, row.data_type);
    }
    // The old app's driver never set a time zone, so its `timestamp without time zone` columns
    // hold the server's default local time (`reset_val`); diesel starts this session in UTC, so
    // it is switched to that zone before those columns are read as instants.
    let zone = match time_zone {
        Some(zone) => zone.to_owned(),
        None => {
            let row: TextRow = diesel::sql_query(
                "SELECT reset_val AS value FROM pg_settings WHERE name = 'TimeZone'",
            )
            .get_result(&mut conn)
            .await?;
            row.value
        }
    };
    let _: TextRow = diesel::sql_query("SELECT set_config('TimeZone', $1, false) AS value")
        .bind::<Text, _>(&zone)
        .get_result(&mut conn)
        .await
        .with_context(|| format!("{zone:?} is not a time zone PostgreSQL knows"))?;
    data.stats.time_zone = Some(zone);

    let Some(user_columns) = columns.get("users") else {
        bail!("it has no `users` table (is this the NestJS app's database?)");
    };
    for needed in ["id", "username", "password"] {
        if !user_columns.contains_key(needed) {
            bail!("its `users` table has no `{needed}` column");
        }
    }
    let created = timestamp_expr(user_columns, "users", "createdAt", "\"createdAt\"")?;
    let users: Vec<UserRow> = diesel::sql_query(format!(
        "SELECT id::text AS id, username::text AS username, password::text AS password, \
                {created} AS created_ms \
         FROM users ORDER BY created_ms, id"
    ))
    .load(&mut conn)
    .await?;
    let mut out = Vec::with_capacity(users.len());
    for row in users {
        let place = format!("users row {}", row.id.as_deref().unwrap_or("(no id)"));
        let parsed = (|| {
            let id = parse_uuid(row.id.as_deref()).ok_or("its id is not a UUID")?;
            let username = row.username.ok_or("it has no username")?;
            let password_hash = row.password.ok_or("it has no password hash")?;
            let created_at = row
                .created_ms
                .and_then(DateTime::from_timestamp_millis)
                .ok_or("it has no createdAt")?;
            Ok::<_, &str>(SourceUser {
                id,
                username,
                password_hash,
                created_at,
            })
        })();
        match parsed {
            Ok(user) => out.push(user),
            Err(reason) => data.unreadable.push(Unreadable {
                place,
                reason: reason.to_owned(),
            }),
        }
    }
    data.users = Some(out);

    if let Some(rooms) = columns.get("chat_rooms") {
        let groups: CountRow = if rooms.contains_key("type") {
            diesel::sql_query(
                "SELECT count(*) AS n FROM chat_rooms WHERE lower(type::text) = 'group'",
            )
            .get_result(&mut conn)
            .await?
        } else {
            diesel::sql_query("SELECT count(*) AS n FROM chat_rooms")
                .get_result(&mut conn)
                .await?
        };
        let all: CountRow = diesel::sql_query("SELECT count(*) AS n FROM chat_rooms")
            .get_result(&mut conn)
            .await?;
        data.stats.group_rooms = Some(groups.n as usize);
        data.stats.direct_rooms = (all.n - groups.n) as usize;
    }

    let Some(message_columns) = columns.get("messages") else {
        return Ok(());
    };
    for needed in ["senderId", "content"] {
        if !message_columns.contains_key(needed) {
            bail!("its `messages` table has no `{needed}` column");
        }
    }
    let column_or_null = |name: &str| {
        if message_columns.contains_key(name) {
            format!("m.\"{name}\"::text")
        } else {
            "NULL::text".to_owned()
        }
    };
    let receiver = column_or_null("receiverId");
    let row_id = column_or_null("id");
    let has_room_types = message_columns.contains_key("roomId")
        && columns
            .get("chat_rooms")
            .is_some_and(|c| c.contains_key("type"));
    let (room_type, join) = if has_room_types {
        (
            "r.type::text",
            "LEFT JOIN chat_rooms r ON r.id = m.\"roomId\"",
        )
    } else {
        ("NULL::text", "")
    };
    let created = timestamp_expr(message_columns, "messages", "createdAt", "m.\"createdAt\"")?;
    let rows: Vec<MessageRow> = diesel::sql_query(format!(
        "SELECT {row_id} AS row_id, m.\"senderId\"::text AS sender, {receiver} AS receiver, \
                {room_type} AS room_type, m.content::text AS content, {created} AS created_ms \
         FROM messages m {join} ORDER BY created_ms"
    ))
    .load(&mut conn)
    .await?;
    data.stats.message_rows = Some(rows.len());
    let mut view = View::default();
    for row in rows {
        let place = format!(
            "messages row {}",
            row.row_id.as_deref().unwrap_or("(no id)")
        );
        if row
            .room_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("group"))
        {
            data.stats.group_rows += 1;
            continue;
        }
        if row.receiver.is_none() {
            data.stats.rows_without_receiver += 1;
            continue;
        }
        let parsed = (|| {
            let sender = parse_uuid(row.sender.as_deref()).ok_or("its senderId is not a UUID")?;
            let receiver =
                parse_uuid(row.receiver.as_deref()).ok_or("its receiverId is not a UUID")?;
            let content = row.content.ok_or("it has no content")?;
            let created_at = row
                .created_ms
                .and_then(DateTime::from_timestamp_millis)
                .ok_or("it has no createdAt")?;
            Ok::<_, &str>(SourceMessage {
                sender,
                receiver,
                content,
                created_at,
            })
        })();
        match parsed {
            Ok(m) => view.messages.push(m),
            Err(reason) => data.unreadable.push(Unreadable {
                place,
                reason: reason.to_owned(),
            }),
        }
    }
    data.views.push(view);
    Ok(())
}

/// SQL for `column`'s value in epoch milliseconds. Columns without a time zone are read in the
/// session's, which `read_postgres` sets to the one the old app wrote in.
fn timestamp_expr(
    columns: &HashMap<String, String>,
    table: &str,
    name: &str,
    column: &str,
) -> anyhow::Result<String> {
    let Some(kind) = columns.get(name) else {
        bail!("its `{table}` table has no `{name}` column");
    };
    if !matches!(
        kind.as_str(),
        "timestamp without time zone" | "timestamp with time zone" | "date"
    ) {
        bail!("its `{table}.{name}` column is of type {kind}, not a timestamp");
    }
    Ok(format!(
        "floor(extract(epoch FROM {column}::timestamptz) * 1000)::bigint"
    ))
}

fn parse_uuid(raw: Option<&str>) -> Option<Uuid> {
    raw.and_then(|s| Uuid::parse_str(s.trim()).ok())
}

/// `*`, `?`, `[`, `]` and `\` are glob syntax in SCAN's MATCH.
fn glob_escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

async fn read_redis(
    url: &str,
    prefix: &str,
    data: &mut SourceData,
    progress: &dyn Fn(&str),
) -> anyhow::Result<()> {
    if url.contains("-cluster://") {
        bail!("the NestJS app used a single Redis server: give its redis:// URL");
    }
    let config = RedisConfig::from_url(url).context("not a valid Redis URL")?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = std::time::Duration::from_secs(5);
        })
        .build()
        .context("could not set up the Redis client")?;
    client.init().await.context("could not connect")?;
    data.stats.redis_read = true;

    let pattern = format!("{}*", glob_escape(prefix));
    let mut keys = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, page): (String, Vec<String>) = client
            .scan_page(cursor, pattern.clone(), Some(1000), None)
            .await?;
        keys.extend(page);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key twice; sorted, the import reads the lists in a stable order.
    keys.sort();
    keys.dedup();

    for (i, key) in keys.iter().enumerate() {
        if i % 500 == 0 {
            progress(&format!("reading Redis list {} of {}", i + 1, keys.len()));
        }
        let entries: Vec<Value> = match client.lrange(key.as_str(), 0, -1).await {
            Ok(entries) => entries,
            Err(err) if err.to_string().contains("WRONGTYPE") => {
                data.stats.redis_other_keys.push(key.clone());
                continue;
            }
            Err(err) => return Err(err).with_context(|| format!("could not read {key}")),
        };
        data.stats.redis_lists += 1;
        data.stats.redis_entries += entries.len();
        let mut view = View {
            messages: Vec::with_capacity(entries.len()),
        };
        // Newest first in Redis; oldest first here.
        for (position, entry) in entries.into_iter().enumerate().rev() {
            let place = format!("Redis list {key}, entry {position}");
            let text = match entry {
                Value::String(s) => Some(s.to_string()),
                Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
                _ => None,
            };
            match text
                .ok_or_else(|| "it is not UTF-8 text".to_owned())
                .and_then(|t| parse_entry(&t))
            {
                Ok(m) => view.messages.push(m),
                Err(reason) => data.unreadable.push(Unreadable { place, reason }),
            }
        }
        data.views.push(view);
    }
    let _ = client.quit().await;
    Ok(())
}

/// One history entry: `{id, content, senderId, receiverId, createdAt}`. The old `id` is ignored:
/// it was `Date.now()` and many messages share one.
pub fn parse_entry(text: &str) -> Result<SourceMessage, String> {
    let json: Json = serde_json::from_str(text).map_err(|_| "it is not JSON".to_owned())?;
    let field = |name: &str| json.get(name).filter(|v| !v.is_null());
    let id_of = |name: &str| {
        field(name)
            .and_then(Json::as_str)
            .and_then(|s| Uuid::parse_str(s.trim()).ok())
            .ok_or_else(|| format!("its {name} is not a UUID"))
    };
    let sender = id_of("senderId")?;
    let receiver = id_of("receiverId")?;
    let content = field("content")
        .and_then(Json::as_str)
        .ok_or_else(|| "its content is not text".to_owned())?
        .to_owned();
    // Refused here rather than by PostgreSQL, where it would fail the whole batch.
    if content.contains('\0') {
        return Err("its content has a NUL character, which PostgreSQL cannot store".to_owned());
    }
    let created_at = match field("createdAt") {
        Some(Json::String(s)) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Some(Json::Number(n)) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    }
    .ok_or_else(|| "its createdAt is not a date".to_owned())?;
    let created_at =
        DateTime::from_timestamp_millis(created_at.timestamp_millis()).unwrap_or(created_at);
    Ok(SourceMessage {
        sender,
        receiver,
        content,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_written_by_the_old_app_is_read() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let text = format!(
            r#"{{"id":"1717171717171","content":"hi there","senderId":"{a}","receiverId":"{b}","createdAt":"2024-05-31T16:08:37.171Z"}}"#
        );
        let m = parse_entry(&text).unwrap();
        assert_eq!((m.sender, m.receiver), (a, b));
        assert_eq!(m.content, "hi there");
        assert_eq!(m.created_at.to_rfc3339(), "2024-05-31T16:08:37.171+00:00");
    }

    #[test]
    fn entries_that_cannot_be_messages_say_why() {
        let a = Uuid::new_v4();
        assert_eq!(parse_entry("nope").unwrap_err(), "it is not JSON");
        let no_receiver = format!(r#"{{"content":"x","senderId":"{a}","createdAt":1}}"#);
        assert!(
            parse_entry(&no_receiver)
                .unwrap_err()
                .contains("receiverId")
        );
        let bad_date =
            format!(r#"{{"content":"x","senderId":"{a}","receiverId":"{a}","createdAt":"soon"}}"#);
        assert!(parse_entry(&bad_date).unwrap_err().contains("createdAt"));
        let nul = format!(
            r#"{{"content":"a\u0000b","senderId":"{a}","receiverId":"{a}","createdAt":1}}"#
        );
        assert!(parse_entry(&nul).unwrap_err().contains("NUL"));
    }

    #[test]
    fn glob_syntax_in_the_prefix_is_escaped() {
        assert_eq!(glob_escape("chat:history:"), "chat:history:");
        assert_eq!(glob_escape("a*b[c]"), "a\\*b\\[c\\]");
    }
}
