//! Table definitions, declared once for both backends. Only the SQL types of ids and timestamps
//! differ; each backend module names its own in `types`.

macro_rules! tables {
    ($types:ident) => {
        diesel::table! {
            use diesel::sql_types::*;
            use crate::store::schema::$types::*;

            users (id) {
                id -> Id,
                username -> Text,
                password_hash -> Text,
                created_at -> Ts,
                disabled_at -> Nullable<Ts>,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use crate::store::schema::$types::*;

            access_changes (seq) {
                seq -> BigInt,
                user_id -> Id,
                revoked -> Bool,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use crate::store::schema::$types::*;

            messages (seq) {
                seq -> BigInt,
                id -> Id,
                sender_id -> Id,
                receiver_id -> Nullable<Id>,
                room_id -> Nullable<Id>,
                peer_lo -> Id,
                peer_hi -> Id,
                content -> Text,
                client_msg_id -> Nullable<Text>,
                created_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use crate::store::schema::$types::*;

            conversations (owner_id, peer_id) {
                owner_id -> Id,
                peer_id -> Id,
                last_seq -> BigInt,
                read_seq -> Nullable<BigInt>,
                received -> BigInt,
                received_read -> BigInt,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use crate::store::schema::$types::*;

            rooms (id) {
                id -> Id,
                name -> Text,
                created_at -> Ts,
                version -> BigInt,
                last_seq -> Nullable<BigInt>,
                message_count -> BigInt,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use crate::store::schema::$types::*;

            room_members (room_id, user_id) {
                room_id -> Id,
                user_id -> Id,
                role -> Text,
                joined_at -> Ts,
                read_seq -> Nullable<BigInt>,
                sent -> BigInt,
                seen -> BigInt,
                sent_seen -> BigInt,
            }
        }

        diesel::allow_tables_to_appear_in_same_query!(
            users,
            messages,
            conversations,
            rooms,
            room_members,
            access_changes
        );
    };
}

/// SQL types of the PostgreSQL schema.
pub mod pg_types {
    pub type Id = diesel::sql_types::Uuid;
    pub type Ts = diesel::sql_types::Timestamptz;
}

/// SQL types of the SQLite schema.
pub mod sqlite_types {
    pub type Id = diesel::sql_types::Text;
    pub type Ts = diesel::sql_types::TimestamptzSqlite;
}

/// PostgreSQL tables.
pub mod pg {
    tables!(pg_types);
}

/// SQLite tables.
pub mod sqlite {
    tables!(sqlite_types);
}
