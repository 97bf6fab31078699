//! Read state and typing: moving a participant's read cursor, and who hears of a cursor move or
//! of someone typing. Cursors go through the batching [`CursorWriter`]; typing is never stored,
//! and a keystroke costs no query (room members come from the in-memory directory).

use std::{borrow::Cow, sync::Arc};

use uuid::Uuid;

use super::{
    Chat, Members,
    requests::{MarkRead, TypingRequest},
};
use crate::{
    cluster::RoomVersion,
    error::AppError,
    store::{CursorMove, Recipient},
};

/// Who hears of a read-state or typing event: users, chosen under a room's membership version.
#[derive(Debug, Clone)]
pub struct Audience {
    users: Audiences,
    /// The room and membership version the users were chosen under (rooms only).
    pub room: Option<RoomVersion>,
}

#[derive(Debug, Clone)]
enum Audiences {
    Listed(Vec<Uuid>),
    Members { members: Arc<Members>, but: Uuid },
}

impl Audience {
    /// The users to deliver to.
    pub fn users(&self) -> Cow<'_, [Uuid]> {
        match &self.users {
            Audiences::Listed(users) => Cow::Borrowed(users),
            Audiences::Members { members, but } => {
                Cow::Owned(members.ids().iter().copied().filter(|u| u != but).collect())
            }
        }
    }
}

/// The outcome of `conversation:read`.
#[derive(Debug, Clone)]
pub struct Read {
    /// The cursor after the call.
    pub up_to: Uuid,
    /// Whether this call moved it; only then is anyone told.
    pub moved: bool,
    /// Who hears of the move: the other participants and the reader (whose other sockets clear
    /// their badge).
    pub audience: Audience,
}

impl Chat {
    /// Moves `reader`'s cursor of a conversation forward to `up_to` (a message of it, theirs or
    /// not). An older `up_to` leaves it where it is. Returns after the cursor is stored.
    pub async fn mark_read(&self, reader: Uuid, req: MarkRead) -> Result<Read, AppError> {
        let members = match req.of {
            Recipient::User(peer) if peer == reader => {
                return Err(AppError::Invalid("receiverId must be another user".into()));
            }
            Recipient::User(_) => None,
            Recipient::Room(room) => Some(self.members_for(room, reader).await?),
        };
        let cursor = self
            .cursors
            .write(CursorMove {
                reader,
                of: req.of,
                up_to: req.up_to,
            })
            .await?
            .ok_or_else(|| {
                AppError::Invalid("upTo is not a message of this conversation".into())
            })?;
        let audience = match (req.of, members) {
            (Recipient::Room(room), Some(members)) => {
                // The membership after the write: someone added meanwhile hears of it too.
                let members = self
                    .rooms
                    .members_since(room, members.version)
                    .await?
                    .unwrap_or(members);
                Audience {
                    room: Some(RoomVersion {
                        room,
                        version: members.version,
                    }),
                    users: Audiences::Listed(members.ids().to_vec()),
                }
            }
            (of, _) => Audience {
                users: Audiences::Listed(vec![of_id(of), reader]),
                room: None,
            },
        };
        Ok(Read {
            up_to: cursor.id,
            moved: cursor.moved,
            audience,
        })
    }

    /// Who hears that `typist` is typing: the other participants, never the typist. Checks
    /// room membership from memory; a direct peer is not looked up (an unknown id has no
    /// sockets, so nobody hears it).
    pub async fn typing_audience(
        &self,
        typist: Uuid,
        req: &TypingRequest,
    ) -> Result<Audience, AppError> {
        match req.of {
            Recipient::User(peer) if peer == typist => {
                Err(AppError::Invalid("receiverId must be another user".into()))
            }
            Recipient::User(peer) => Ok(Audience {
                users: Audiences::Listed(vec![peer]),
                room: None,
            }),
            Recipient::Room(room) => {
                let members = self.members_for(room, typist).await?;
                Ok(Audience {
                    room: Some(RoomVersion {
                        room,
                        version: members.version,
                    }),
                    users: Audiences::Members {
                        members,
                        but: typist,
                    },
                })
            }
        }
    }
}

fn of_id(of: Recipient) -> Uuid {
    match of {
        Recipient::User(id) | Recipient::Room(id) => id,
    }
}
