//! Revoked accounts: the ids of disabled and deleted accounts, kept in memory so that every
//! token check (handshake, REST, each send) costs a hash lookup and keeps working while the
//! database is down. Fed by the database's access log (`access_changes`, written by triggers):
//! loaded whole at start-up, then polled for new rows every `ACCESS_REFRESH_MS`. Every instance
//! polls the same shared database, so a change reaches all of them within one interval.

use std::{collections::HashSet, sync::RwLock};

use uuid::Uuid;

use crate::store::{AccessChange, Store, StoreError};

/// Log rows read per query.
const PAGE: usize = 1000;

#[derive(Default)]
struct State {
    revoked: HashSet<Uuid>,
    /// The last log row applied.
    seq: i64,
}

/// The revoked account ids and how far the log has been read.
#[derive(Default)]
pub struct Revocations {
    state: RwLock<State>,
}

impl Revocations {
    /// Whether `id`'s tokens are refused.
    pub fn is_revoked(&self, id: Uuid) -> bool {
        self.read().revoked.contains(&id)
    }

    /// How many accounts are revoked.
    pub fn len(&self) -> usize {
        self.read().revoked.len()
    }

    /// Whether no account is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the log rows after the last one applied and applies them in order. Returns the
    /// accounts that became revoked (their open sockets are to be closed).
    pub async fn refresh(&self, store: &Store) -> Result<Vec<Uuid>, StoreError> {
        let mut newly_revoked = Vec::new();
        loop {
            let after = self.read().seq;
            let rows = store.access_changes_after(after, PAGE).await?;
            let full = rows.len() == PAGE;
            self.apply(&rows, &mut newly_revoked);
            if !full {
                break;
            }
        }
        // An account revoked and restored within one refresh is not to be disconnected.
        newly_revoked.retain(|id| self.is_revoked(*id));
        newly_revoked.dedup();
        Ok(newly_revoked)
    }

    fn apply(&self, rows: &[AccessChange], newly_revoked: &mut Vec<Uuid>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            // Another refresh may have applied these rows meanwhile.
            if row.seq <= state.seq {
                continue;
            }
            state.seq = row.seq;
            if row.revoked {
                if state.revoked.insert(row.user) {
                    newly_revoked.push(row.user);
                }
            } else {
                state.revoked.remove(&row.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64, user: Uuid, revoked: bool) -> AccessChange {
        AccessChange { seq, user, revoked }
    }

    #[test]
    fn rows_apply_in_order_and_once() {
        let r = Revocations::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut newly = Vec::new();
        r.apply(&[change(1, a, true), change(2, b, true)], &mut newly);
        assert_eq!(newly, vec![a, b]);
        assert!(r.is_revoked(a) && r.is_revoked(b));
        let mut again = Vec::new();
        // A stale page (rows already applied) changes nothing.
        r.apply(&[change(2, b, false)], &mut again);
        assert!(r.is_revoked(b) && again.is_empty());
        r.apply(&[change(3, a, false)], &mut again);
        assert!(!r.is_revoked(a));
        assert_eq!(r.len(), 1);
    }
}
