//! Embedded SQLite backend: a file in `DATA_DIR`, used through diesel-async's
//! `SyncConnectionWrapper` (queries run on blocking threads, never on the async runtime).

use diesel::{QueryResult, SqliteConnection};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;

use crate::store::schema::sqlite::{conversations, messages, users};

pub type Conn = SyncConnectionWrapper<SqliteConnection>;

/// SQLite already admits one writer at a time (and its rowid order is commit order); a batch's
/// first statement is its insert, so it takes the write lock before reading anything.
async fn serialize_writers(_conn: &mut Conn) -> QueryResult<()> {
    Ok(())
}

crate::store::queries::backend_queries!(row_by_row);
