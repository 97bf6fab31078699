//! Rooms in the store: creating them and changing their members (each change one transaction
//! that checks the rules and bumps the room's membership version), reading them, the rooms of a
//! user for the conversation list, and the user directory.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Backend, Refusal, Result, Room, RoomSummary, Store, StoreError, User,
    models::{Member, MemberRow, Message, RoomRow},
    pg, sqlite,
    types::DbId,
};

/// The caps a membership change is checked against.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Most members of one room (`ROOM_MAX_MEMBERS`).
    pub max_members: u32,
    /// Most rooms one user may be in (`MAX_ROOMS_PER_USER`).
    pub max_rooms_per_user: u32,
}

/// A room to create.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Its id, chosen before the insert.
    pub id: Uuid,
    /// Its name, already validated.
    pub name: String,
    /// When it was created (also when its first members joined).
    pub created_at: DateTime<Utc>,
    /// The creator, who becomes its owner.
    pub owner: Uuid,
    /// The other first members: distinct, without the owner.
    pub members: Vec<Uuid>,
}

/// The error of a membership transaction: the database's, or a rule's (which rolls it back).
#[derive(Debug)]
pub enum TxError {
    /// The database failed.
    Db(diesel::result::Error),
    /// A rule refused the change.
    Refused(Refusal),
}

impl From<diesel::result::Error> for TxError {
    fn from(err: diesel::result::Error) -> Self {
        TxError::Db(err)
    }
}

impl From<TxError> for StoreError {
    fn from(err: TxError) -> Self {
        match err {
            TxError::Db(err) => StoreError::from(err),
            TxError::Refused(why) => StoreError::Refused(why),
        }
    }
}

/// How a removal ended.
#[derive(Debug, Clone)]
pub enum Removal {
    /// The room lives on, as it is now.
    Remains(Room),
    /// The last member left: the room and its messages are gone.
    Deleted,
}

fn room_from(row: RoomRow, members: Vec<MemberRow>) -> Room {
    Room {
        id: row.id.0,
        name: row.name,
        created_at: row.created_at,
        version: row.version,
        members: members.into_iter().map(Member::from).collect(),
    }
}

impl Store {
    /// A room with its members.
    pub async fn room(&self, id: Uuid) -> Result<Option<Room>> {
        let found = with_conn!(self, |conn, q| q::room_with_members(conn, DbId(id)))?;
        Ok(found.map(|(row, members)| room_from(row, members)))
    }

    /// A room's membership version and member ids.
    pub async fn room_member_ids(&self, id: Uuid) -> Result<Option<(i64, Vec<Uuid>)>> {
        let found = with_conn!(self, |conn, q| q::member_ids(conn, DbId(id)))?;
        Ok(found.map(|(version, ids)| (version, ids.into_iter().map(|i| i.0).collect())))
    }

    /// The room as it is after a change the caller made (it exists: the change committed).
    async fn room_after_change(&self, id: Uuid) -> Result<Room> {
        self.room(id)
            .await?
            .ok_or(StoreError::Refused(Refusal::NotFound))
    }

    /// Creates a room (`room.owner` as owner); `UnknownUser`, `RoomFull` or `TooManyRooms`
    /// refuse it.
    pub async fn create_room(&self, room: NewRoom, limits: RoomLimits) -> Result<Room> {
        with_conn!(self, |conn, q| q::create_room(conn, &room, limits))?;
        self.room_after_change(room.id).await
    }

    /// Renames a room; `NotFound` (not a member) or `Forbidden` (not the owner) refuse it.
    pub async fn rename_room(&self, id: Uuid, caller: Uuid, name: &str) -> Result<Room> {
        with_conn!(self, |conn, q| q::rename_room(
            conn,
            DbId(id),
            DbId(caller),
            name
        ))?;
        self.room_after_change(id).await
    }

    /// Adds users (those already in the room are skipped); returns the room and who was added.
    pub async fn add_members(
        &self,
        id: Uuid,
        caller: Uuid,
        users: &[Uuid],
        limits: RoomLimits,
    ) -> Result<(Room, Vec<Uuid>)> {
        let ids: Vec<DbId> = users.iter().copied().map(DbId).collect();
        let joined_at = super::now_ms();
        let added = with_conn!(self, |conn, q| q::add_members(
            conn,
            DbId(id),
            DbId(caller),
            &ids,
            joined_at,
            limits
        ))?;
        let room = self.room_after_change(id).await?;
        Ok((room, added.into_iter().map(|i| i.0).collect()))
    }

    /// Removes `target` from the room (the owner removes anyone; anyone removes themselves).
    pub async fn remove_member(&self, id: Uuid, caller: Uuid, target: Uuid) -> Result<Removal> {
        let remains = with_conn!(self, |conn, q| q::remove_member(
            conn,
            DbId(id),
            DbId(caller),
            DbId(target)
        ))?;
        if remains {
            Ok(Removal::Remains(self.room_after_change(id).await?))
        } else {
            Ok(Removal::Deleted)
        }
    }

    /// The rooms of `user` for the conversation list (at most `limit`).
    pub async fn rooms_of(&self, user: Uuid, limit: usize) -> Result<Vec<RoomSummary>> {
        let rows = with_conn!(self, |conn, q| q::rooms_of(conn, DbId(user), limit as i64))?;
        Ok(rows
            .into_iter()
            .map(|(room, member_count, last, unread)| RoomSummary {
                id: room.id.0,
                name: room.name,
                created_at: room.created_at,
                member_count,
                last_message: last.map(Message::from),
                unread: unread.max(0),
            })
            .collect())
    }

    /// Users whose name starts with `prefix` (any case), `me` excluded, by name; at most `limit`.
    pub async fn users_with_prefix(
        &self,
        prefix: &str,
        me: Uuid,
        limit: usize,
    ) -> Result<Vec<User>> {
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for c in prefix.to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        let rows = with_conn!(self, |conn, q| q::users_matching(
            conn,
            &pattern,
            DbId(me),
            limit as i64
        ))?;
        Ok(rows.into_iter().map(User::from).collect())
    }
}
