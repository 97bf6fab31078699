//! Who is in which room, in memory: every delivery of a room event and every keystroke of
//! `typing` reads it instead of the database. Entries load from the store on first use and are
//! replaced by each membership change, made here or announced by another instance over the bus
//! before that change is acknowledged. Each entry carries the room's membership version, so a
//! room message (whose insert reads the version) is always delivered under the membership it
//! committed with, and an event decided under an older membership never reaches someone who has
//! left since.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
};

use uuid::Uuid;

use crate::store::{Store, StoreError};

/// Rooms held in memory; past this the whole directory is dropped and reloads on demand.
const CAPACITY: usize = 100_000;

/// A room's members under one membership version.
#[derive(Debug, PartialEq, Eq)]
pub struct Members {
    /// The membership version these members are of.
    pub version: i64,
    /// Sorted, for `contains`.
    ids: Vec<Uuid>,
}

impl Members {
    fn new(version: i64, mut ids: Vec<Uuid>) -> Members {
        ids.sort_unstable();
        ids.dedup();
        Members { version, ids }
    }

    /// Whether `user` is a member.
    pub fn contains(&self, user: Uuid) -> bool {
        self.ids.binary_search(&user).is_ok()
    }

    /// Every member.
    pub fn ids(&self) -> &[Uuid] {
        &self.ids
    }
}

/// Room memberships of this instance; cheap to share.
pub struct RoomDirectory {
    store: Store,
    rooms: Mutex<HashMap<Uuid, Arc<Members>>>,
}

impl RoomDirectory {
    /// An empty directory over `store`.
    pub fn new(store: Store) -> RoomDirectory {
        RoomDirectory {
            store,
            rooms: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Members>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `members` unless a later version is held already; returns what is held now.
    fn keep(&self, room: Uuid, members: Members) -> Arc<Members> {
        let mut rooms = self.lock();
        if rooms.len() >= CAPACITY && !rooms.contains_key(&room) {
            rooms.clear();
        }
        match rooms.get(&room) {
            Some(held) if held.version >= members.version => held.clone(),
            _ => {
                let members = Arc::new(members);
                rooms.insert(room, members.clone());
                members
            }
        }
    }

    /// The room's members, or `None` if there is no such room.
    pub async fn members(&self, room: Uuid) -> Result<Option<Arc<Members>>, StoreError> {
        self.members_since(room, 0).await
    }

    /// The room's members under at least membership `version` (reloaded if what is held is
    /// older), or `None` if there is no such room.
    pub async fn members_since(
        &self,
        room: Uuid,
        version: i64,
    ) -> Result<Option<Arc<Members>>, StoreError> {
        if let Some(held) = self.lock().get(&room)
            && held.version >= version
        {
            return Ok((held.version != DELETED).then(|| held.clone()));
        }
        let Some((version, ids)) = self.store.room_member_ids(room).await? else {
            return Ok(None);
        };
        let held = self.keep(room, Members::new(version, ids));
        Ok((held.version != DELETED).then_some(held))
    }

    /// Records a membership change (`None`: the room was deleted).
    pub fn apply(&self, room: Uuid, version: i64, members: Option<Vec<Uuid>>) {
        match members {
            Some(ids) => {
                self.keep(room, Members::new(version, ids));
            }
            None => {
                self.keep(room, Members::new(DELETED, Vec::new()));
            }
        }
    }

    /// Forgets everything (changes may have been missed while the bus was down).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Those of `users` who should still get an event of `room` decided under membership
    /// `version`: all of them, unless a later membership is known here, which then filters them.
    pub fn still_members<'a>(
        &self,
        room: Uuid,
        version: i64,
        users: &'a [Uuid],
    ) -> Cow<'a, [Uuid]> {
        match self.lock().get(&room) {
            Some(held) if held.version > version => Cow::Owned(
                users
                    .iter()
                    .copied()
                    .filter(|u| held.contains(*u))
                    .collect(),
            ),
            _ => Cow::Borrowed(users),
        }
    }
}

/// The version a deleted room is held under: later than any membership it ever had.
const DELETED: i64 = i64::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_kept_sorted_and_distinct_for_lookups() {
        let members = Members::new(
            3,
            vec![Uuid::from_u128(2), Uuid::from_u128(1), Uuid::from_u128(2)],
        );
        assert!(members.contains(Uuid::from_u128(1)));
        assert!(!members.contains(Uuid::from_u128(3)));
        assert_eq!(members.ids(), [Uuid::from_u128(1), Uuid::from_u128(2)]);
    }
}
