//! PostgreSQL backend: pooled native async connections (bb8).

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use crate::store::schema::pg::{conversations, messages, users};

pub type Conn = AsyncPgConnection;

/// Message inserts hold a cluster-wide transaction lock so that `seq` order equals commit order
/// on every instance; group commit makes that one lock per batch, not per message.
async fn serialize_writers(conn: &mut Conn) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(7415946721)")
        .execute(conn)
        .await
        .map(drop)
}

crate::store::queries::backend_queries!(batch);
