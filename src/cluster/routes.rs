//! Which instances host each user's sockets, so that a delivery is published only to the
//! instances that have a socket to write it to, instead of being decoded by every instance.
//!
//! Each instance counts its own sockets per user. When a user gets their first socket here, the
//! handshake tells every other instance (a `Host` bus message) and waits for each to apply it
//! before the client hears it is connected; so a message committed after that is published to
//! this instance too, and one committed before it is in what the client's `message:sync` returns.
//! When the user's last socket here closes, the others are told without waiting.
//!
//! The one error that loses a live event is a missing route; an extra one only costs a publish
//! nobody acts on. So every uncertain case errs towards extra routes: messages carry a version
//! (per sender, increasing, seeded from the clock so a restarted instance with the same id still
//! counts up), an older message never overrides a newer one, what is loaded from Redis's
//! per-instance socket counts only adds, and until the routes are known complete (at start, and
//! after this instance's pub/sub connection came back) deliveries go to every instance.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use uuid::Uuid;

/// The routes of this instance: its own sockets per user and the other instances' users.
#[derive(Debug)]
pub(super) struct Routes {
    /// This instance's sockets per user, and the announcement of the user's route here (made
    /// once, by the first socket; the sockets that join meanwhile wait for the same one).
    local: Mutex<HashMap<Uuid, (usize, Announced)>>,
    /// The other instances that host each user, with the version last heard from each.
    remote: Mutex<Remote>,
    /// Whether `remote` is known to miss nobody; until then, deliveries go to every instance.
    complete: AtomicBool,
    /// The version of this instance's next route message.
    next_version: AtomicU64,
}

#[derive(Debug, Default)]
struct Remote {
    users: HashMap<Uuid, Vec<(Arc<str>, u64)>>,
    /// One shared name per instance.
    names: HashMap<Arc<str>, ()>,
}

impl Remote {
    fn name(&mut self, instance: &str) -> Arc<str> {
        if let Some((name, ())) = self.names.get_key_value(instance) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(instance);
        self.names.insert(name.clone(), ());
        name
    }
}

/// Set once every other instance has applied (or failed to confirm) a user's route here.
pub(super) type Announced = Arc<tokio::sync::OnceCell<()>>;

/// Where a delivery for some users must be published.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Targets {
    /// The routes are not known complete: to every instance.
    Everyone,
    /// To these instances (none: every socket of these users is here, or they are offline).
    Only(Vec<Arc<str>>),
}

impl Routes {
    pub(super) fn new() -> Routes {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        Routes {
            local: Mutex::default(),
            remote: Mutex::default(),
            complete: AtomicBool::new(false),
            next_version: AtomicU64::new(micros),
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (usize, Announced)>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remote(&self) -> std::sync::MutexGuard<'_, Remote> {
        self.remote.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A version for a route message of this instance, later than every one before it.
    pub(super) fn version(&self) -> u64 {
        self.next_version.fetch_add(1, Relaxed)
    }

    /// Counts a socket of `user` in here; returns the announcement of the user's route here,
    /// which is new (not yet made) for the user's first socket.
    pub(super) fn socket_in(&self, user: Uuid) -> Announced {
        let mut local = self.local();
        let (n, announced) = local.entry(user).or_default();
        *n += 1;
        announced.clone()
    }

    /// Counts a socket of `user` out; `true` for the user's last socket here.
    pub(super) fn socket_out(&self, user: Uuid) -> bool {
        let mut local = self.local();
        match local.get_mut(&user) {
            Some((n, _)) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                local.remove(&user);
                true
            }
            None => false,
        }
    }

    /// Whether `user` has a socket here.
    pub(super) fn is_local(&self, user: Uuid) -> bool {
        self.local().contains_key(&user)
    }

    /// Every user with a socket here.
    pub(super) fn local_users(&self) -> Vec<Uuid> {
        self.local().keys().copied().collect()
    }

    /// `instance` says it now hosts `user` (`on`) or no longer does, as of `version`.
    pub(super) fn heard(&self, instance: &str, user: Uuid, version: u64, on: bool) {
        let mut remote = self.remote();
        let name = remote.name(instance);
        let hosts = remote.users.entry(user).or_default();
        match hosts.iter().position(|(i, _)| **i == *instance) {
            Some(at) if hosts[at].1 >= version => {}
            Some(at) if on => hosts[at].1 = version,
            Some(at) => {
                hosts.swap_remove(at);
            }
            None if on => hosts.push((name, version)),
            None => {}
        }
        if hosts.is_empty() {
            remote.users.remove(&user);
        }
    }

    /// Adds what Redis counts for `instance` (its per-instance socket hash); removes nothing.
    pub(super) fn load(&self, instance: &str, users: impl IntoIterator<Item = Uuid>) {
        let mut remote = self.remote();
        let name = remote.name(instance);
        for user in users {
            let hosts = remote.users.entry(user).or_default();
            if !hosts.iter().any(|(i, _)| **i == *instance) {
                hosts.push((name.clone(), 0));
            }
        }
    }

    /// Forgets every instance but `live` (those that hold a lease: the others stopped or died).
    pub(super) fn keep_only(&self, live: &[String]) {
        let mut remote = self.remote();
        let gone: Vec<Arc<str>> = remote
            .names
            .keys()
            .filter(|name| !live.iter().any(|l| l.as_str() == &***name))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        remote.users.retain(|_, hosts| {
            hosts.retain(|(i, _)| !gone.contains(i));
            !hosts.is_empty()
        });
        for name in gone {
            remote.names.remove(&name);
        }
    }

    /// Marks the routes complete (loaded, or reloaded after an outage) or not.
    pub(super) fn set_complete(&self, complete: bool) {
        self.complete.store(complete, Relaxed);
    }

    /// Where a delivery for the sockets of `users` must be published.
    pub(super) fn targets(&self, users: &[Uuid]) -> Targets {
        if !self.complete.load(Relaxed) {
            return Targets::Everyone;
        }
        let remote = self.remote();
        let mut to: Vec<Arc<str>> = Vec::new();
        for user in users {
            for (instance, _) in remote.users.get(user).into_iter().flatten() {
                if !to.iter().any(|t| Arc::ptr_eq(t, instance)) {
                    to.push(instance.clone());
                }
            }
        }
        Targets::Only(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(routes: &Routes, users: &[Uuid]) -> Vec<String> {
        match routes.targets(users) {
            Targets::Only(mut to) => {
                to.sort();
                to.iter().map(|s| s.to_string()).collect()
            }
            Targets::Everyone => panic!("routes should be complete"),
        }
    }

    #[test]
    fn until_complete_every_delivery_goes_to_everyone() {
        let routes = Routes::new();
        assert_eq!(routes.targets(&[Uuid::new_v4()]), Targets::Everyone);
        routes.set_complete(true);
        assert_eq!(routes.targets(&[Uuid::new_v4()]), Targets::Only(vec![]));
    }

    #[test]
    fn a_delivery_goes_to_each_instance_hosting_any_recipient_once() {
        let routes = Routes::new();
        routes.set_complete(true);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        routes.heard("x", a, 5, true);
        routes.heard("y", a, 5, true);
        routes.heard("x", b, 6, true);
        assert_eq!(only(&routes, &[a, b, c]), ["x", "y"]);
        assert_eq!(only(&routes, &[b]), ["x"]);
        assert!(only(&routes, &[c]).is_empty());
        routes.heard("x", a, 7, false);
        assert_eq!(only(&routes, &[a]), ["y"]);
    }

    #[test]
    fn an_older_message_never_overrides_a_newer_one() {
        let routes = Routes::new();
        routes.set_complete(true);
        let a = Uuid::new_v4();
        // Connected again (v9) before the "gone" of the earlier socket (v8) arrived.
        routes.heard("x", a, 9, true);
        routes.heard("x", a, 8, false);
        assert_eq!(only(&routes, &[a]), ["x"]);
        // A late "here" after a newer "gone" only adds a spare route, never loses one.
        routes.heard("x", a, 10, false);
        assert!(only(&routes, &[a]).is_empty());
    }

    #[test]
    fn loading_only_adds_and_an_instance_without_a_lease_loses_its_routes() {
        let routes = Routes::new();
        routes.set_complete(true);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        routes.heard("x", a, 3, true);
        routes.load("x", [b]);
        routes.load("y", [a]);
        assert_eq!(only(&routes, &[a, b]), ["x", "y"]);
        // A loaded route (version 0) gives way to any message about it.
        routes.heard("x", b, 1, false);
        assert_eq!(only(&routes, &[b]), Vec::<String>::new());
        routes.keep_only(&["x".to_owned()]);
        assert_eq!(only(&routes, &[a]), ["x"]);
        routes.keep_only(&[]);
        assert!(only(&routes, &[a]).is_empty());
    }

    #[test]
    fn sockets_of_a_user_share_one_announcement_until_the_last_leaves() {
        let routes = Routes::new();
        let a = Uuid::new_v4();
        let first = routes.socket_in(a);
        let second = routes.socket_in(a);
        assert!(
            Arc::ptr_eq(&first, &second),
            "one announcement per user here"
        );
        assert!(!routes.socket_out(a));
        assert!(routes.socket_out(a));
        assert!(
            !routes.socket_out(a),
            "an unknown user is not counted out twice"
        );
        assert!(routes.local_users().is_empty());
        first.set(()).unwrap();
        let again = routes.socket_in(a);
        assert!(
            again.get().is_none(),
            "after the last socket left, the route is announced anew"
        );
        assert!(routes.version() < routes.version());
    }
}
