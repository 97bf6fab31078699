//! In-process presence: a socket count per user.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use uuid::Uuid;

use crate::store::User;

/// Socket counts per online user, in this process.
#[derive(Clone, Default)]
pub struct LocalPresence {
    online: Arc<Mutex<HashMap<Uuid, (usize, User)>>>,
}

impl LocalPresence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (usize, User)>> {
        self.online.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a socket in; returns the user's sockets now (1 for their first).
    pub fn connect(&self, user: &User) -> usize {
        let mut online = self.lock();
        let entry = online.entry(user.id).or_insert_with(|| (0, user.clone()));
        entry.0 += 1;
        entry.0
    }

    /// Counts a socket out; `true` for the user's last.
    pub fn disconnect(&self, user_id: Uuid) -> bool {
        let mut online = self.lock();
        match online.get_mut(&user_id) {
            Some(entry) if entry.0 > 1 => {
                entry.0 -= 1;
                false
            }
            Some(_) => {
                online.remove(&user_id);
                true
            }
            None => false,
        }
    }

    /// Everyone online, oldest account first.
    pub fn online_users(&self) -> Vec<User> {
        let mut users: Vec<User> = self.lock().values().map(|(_, u)| u.clone()).collect();
        users.sort_by_key(|u| u.created_at);
        users
    }

    /// How many users are online here.
    pub fn online_count(&self) -> usize {
        self.lock().len()
    }

    /// Each online user with their number of sockets.
    pub fn sockets_per_user(&self) -> Vec<(User, usize)> {
        self.lock().values().map(|(n, u)| (u.clone(), *n)).collect()
    }

    /// Which of `ids` are online.
    pub fn online_among(&self, ids: &[Uuid]) -> HashSet<Uuid> {
        let online = self.lock();
        ids.iter()
            .copied()
            .filter(|id| online.contains_key(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: Uuid::now_v7(),
            username: "tabby".into(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_user_goes_offline_only_when_the_last_tab_closes() {
        let presence = LocalPresence::default();
        let u = user();
        assert_eq!(presence.connect(&u), 1);
        assert_eq!(presence.connect(&u), 2);
        assert!(!presence.disconnect(u.id));
        assert_eq!(presence.online_users().len(), 1);
        assert!(presence.disconnect(u.id));
        assert!(presence.online_users().is_empty());
        assert!(!presence.disconnect(u.id));
    }
}
