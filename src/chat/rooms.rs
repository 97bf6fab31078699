//! Rooms: creating them, changing their members, sending to them and reading them. A membership
//! change is committed, applied to this instance's directory and, in cluster mode, applied by
//! every other instance before it returns, so that it is in force everywhere before its ack.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    Chat, Members,
    requests::{AddMembers, CreateRoom, RemoveMember, RenameRoom, RoomHistory, SendToRoom},
};
use crate::{
    error::AppError,
    store::{
        Conversation, Message, NewMessage, Recipient, Room, User,
        rooms::{NewRoom, Removal},
    },
};

/// A message stored in a room.
#[derive(Debug, Clone)]
pub struct RoomSent {
    /// The stored message.
    pub message: Message,
    /// `false` for a retry of a message stored before (same sender and `clientMsgId`).
    pub created: bool,
    /// The members it goes to: the membership it committed under (new messages only).
    pub members: Option<Arc<Members>>,
}

/// What a membership change did, for the events that follow its ack.
#[derive(Debug, Clone)]
pub enum RoomChange {
    /// The room as it is now: created, renamed, or with members added.
    Updated {
        /// The room.
        room: Room,
        /// `false` when nothing changed (everyone to add was a member already).
        changed: bool,
    },
    /// `removed` is out of the room `room_id`.
    Removed {
        /// The room.
        room_id: Uuid,
        /// Who left or was removed.
        removed: Uuid,
        /// The room as it is now (`None`: the last member left and it was deleted).
        room: Option<Room>,
    },
}

impl Chat {
    /// The members of a room the caller is in; `not_found` for any other room.
    pub(super) async fn members_for(
        &self,
        room: Uuid,
        caller: Uuid,
    ) -> Result<Arc<Members>, AppError> {
        match self.rooms.members(room).await? {
            Some(members) if members.contains(caller) => Ok(members),
            _ => Err(AppError::room_not_found()),
        }
    }

    /// Records a committed membership change here and on every other instance.
    async fn propagate(&self, room: Uuid, version: i64, members: Option<Vec<Uuid>>) {
        self.rooms.apply(room, version, members.clone());
        if let Some(bus) = self.mode.bus()
            && let Err(err) = bus.members_changed(room, version, members).await
        {
            // Committed, and in force here; the other instances drop what they hold about rooms
            // when their bus connection comes back.
            tracing::warn!(error = %err, %room, "could not announce a membership change");
        }
    }

    async fn propagate_room(&self, room: &Room) {
        self.propagate(room.id, room.version, Some(room.member_ids()))
            .await;
    }

    /// Creates a room with the caller as owner.
    pub async fn create_room(
        &self,
        caller: &User,
        req: CreateRoom,
    ) -> Result<RoomChange, AppError> {
        let new = NewRoom {
            id: Uuid::now_v7(),
            name: req.name,
            created_at: crate::store::now_ms(),
            owner: caller.id,
            members: req
                .member_ids
                .into_iter()
                .filter(|id| *id != caller.id)
                .collect(),
        };
        let room = self.store.create_room(new, self.limits.rooms).await?;
        self.propagate_room(&room).await;
        Ok(RoomChange::Updated {
            room,
            changed: true,
        })
    }

    /// Renames a room (owner only).
    pub async fn rename_room(
        &self,
        caller: &User,
        req: RenameRoom,
    ) -> Result<RoomChange, AppError> {
        self.members_for(req.room_id, caller.id).await?;
        let room = self
            .store
            .rename_room(req.room_id, caller.id, &req.name)
            .await?;
        Ok(RoomChange::Updated {
            room,
            changed: true,
        })
    }

    /// Adds users to a room (owner only; members already in it are skipped).
    pub async fn add_members(
        &self,
        caller: &User,
        req: AddMembers,
    ) -> Result<RoomChange, AppError> {
        self.members_for(req.room_id, caller.id).await?;
        let (room, added) = self
            .store
            .add_members(req.room_id, caller.id, &req.user_ids, self.limits.rooms)
            .await?;
        let changed = !added.is_empty();
        if changed {
            self.propagate_room(&room).await;
        }
        Ok(RoomChange::Updated { room, changed })
    }

    /// Removes a member (the owner removes anyone; a member removes itself: leaves).
    pub async fn remove_member(
        &self,
        caller: &User,
        req: RemoveMember,
    ) -> Result<RoomChange, AppError> {
        self.members_for(req.room_id, caller.id).await?;
        let removal = self
            .store
            .remove_member(req.room_id, caller.id, req.user_id)
            .await?;
        let room = match removal {
            Removal::Remains(room) => {
                self.propagate_room(&room).await;
                Some(room)
            }
            Removal::Deleted => {
                self.propagate(req.room_id, 0, None).await;
                if let Some(cache) = self.mode.history_cache() {
                    cache.forget(Conversation::Room(req.room_id)).await;
                }
                None
            }
        };
        Ok(RoomChange::Removed {
            room_id: req.room_id,
            removed: req.user_id,
            room,
        })
    }

    /// A room the caller is in, with its members.
    pub async fn room(&self, caller: Uuid, room: Uuid) -> Result<Room, AppError> {
        self.members_for(room, caller).await?;
        let room = self.store.room(room).await?;
        room.filter(|r| r.members.iter().any(|m| m.user.id == caller))
            .ok_or_else(AppError::room_not_found)
    }

    /// Validates and durably stores a room message. Returns only after the commit, with the
    /// members it goes to.
    pub async fn send_to_room(&self, sender: &User, req: SendToRoom) -> Result<RoomSent, AppError> {
        self.check_content(&req.content)?;
        self.members_for(req.room_id, sender.id).await?;
        let new = NewMessage::new(
            sender.id,
            Recipient::Room(req.room_id),
            req.content,
            req.client_msg_id,
        );
        let written = self.store(new).await?;
        if let Recipient::User(_) = written.message.to {
            return Err(super::key_taken("a direct message"));
        }
        let members = match (written.created, written.room_version) {
            (true, Some(version)) => self.rooms.members_since(req.room_id, version).await?,
            _ => None,
        };
        Ok(RoomSent {
            message: written.message,
            created: written.created,
            members,
        })
    }

    /// A page of a room the caller is in, oldest first, and whether older messages exist.
    pub async fn room_history(
        &self,
        caller: Uuid,
        req: RoomHistory,
    ) -> Result<(Vec<Message>, bool), AppError> {
        self.members_for(req.room_id, caller).await?;
        self.page(Conversation::Room(req.room_id), req.before, req.limit)
            .await
    }
}
