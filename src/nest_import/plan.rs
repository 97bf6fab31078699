//! Deciding what an import does, before anything is written: which accounts are copied and under
//! which names, and which messages are new. Pure functions of what was read and what the target
//! holds, so a dry run and a real run decide alike.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::source::{SourceData, SourceMessage, SourceUser};
use crate::{
    auth::validate_username,
    store::{Conversation, ImportedUser, NewMessage, Recipient},
};

/// What `client_msg_id` of an imported message starts with (never a prefix a client sends: ours
/// send UUIDs).
pub const KEY_PREFIX: &str = "nest:";

/// What to do with a username that another account already has in another letter case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflict {
    /// Import nothing and exit with an error, listing every conflict.
    Fail,
    /// Leave the later account (and its messages) out.
    Skip,
    /// Import the later account as name_2 (name_3, …), keeping its password.
    Suffix,
}

/// What to do with a username our rules refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInvalid {
    /// Import the account under the nearest valid name.
    Rename,
    /// Leave the account (and its messages) out.
    Skip,
    /// Import nothing and exit with an error, listing every such name.
    Fail,
}

/// What the target database holds already.
#[derive(Debug, Default)]
pub struct Target {
    /// Every account: id and username.
    pub users: Vec<(Uuid, String)>,
    /// `(sender, client_msg_id)` of every message imported before.
    pub imported: HashSet<(Uuid, String)>,
}

/// Why an account is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Its username collides with another account's.
    Conflict,
    /// Its username breaks our rules.
    InvalidName,
}

/// The decision for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOutcome {
    /// Copy it under this name.
    Import { username: String },
    /// The target has an account with this id (an earlier import).
    AlreadyThere,
    /// Leave it out.
    Skipped(SkipReason),
}

/// Who a colliding username belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub id: Uuid,
    pub username: String,
    /// In the target database (`false`: an older account of the old app).
    pub in_target: bool,
}

/// A username problem, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameIssue {
    pub user_id: Uuid,
    /// The name as the old app had it.
    pub username: String,
    /// `None`: the name breaks our rules; `Some`: it collides with this account's.
    pub conflict_with: Option<Holder>,
    /// The name a renamed account gets; `None` when it is skipped or the run fails.
    pub renamed_to: Option<String>,
    /// The flag said `fail`.
    pub fatal: bool,
}

/// Why a message cannot be imported: one of its two people is not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingWhy {
    /// The account was left out.
    Skipped(SkipReason),
    /// No account with this id is in the old database or the target.
    Unknown,
}

/// Everything an import will do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Accounts to create, in the order of the decisions.
    pub new_users: Vec<ImportedUser>,
    /// The decision per source account, oldest account first.
    pub decisions: Vec<(SourceUser, UserOutcome)>,
    pub issues: Vec<NameIssue>,
    /// Accounts imported whose hash is not bcrypt (they cannot sign in with a password).
    pub not_bcrypt: Vec<(Uuid, String)>,
    /// Messages to store, oldest first.
    pub new_messages: Vec<NewMessage>,
    /// Messages an earlier import stored.
    pub messages_there: usize,
    /// Message entries read, over every place.
    pub entries: usize,
    /// Entries that were another place's copy of a message.
    pub copies: usize,
    /// Messages from a user to themselves (not a conversation here).
    pub to_themselves: usize,
    /// Messages left out because a person is not imported.
    pub without_people: usize,
    /// Per person not imported: why, and how many messages name them.
    pub missing: BTreeMap<Uuid, (MissingWhy, usize)>,
    /// Every conversation with an imported message, new or earlier (their caches are dropped).
    pub conversations: BTreeSet<(Uuid, Uuid)>,
}

impl Plan {
    /// Whether a `fail` flag applies: nothing may be written.
    pub fn must_fail(&self) -> bool {
        self.issues.iter().any(|i| i.fatal)
    }

    pub fn users_already_there(&self) -> usize {
        self.count_outcomes(|o| matches!(o, UserOutcome::AlreadyThere))
    }

    pub fn users_skipped(&self, why: SkipReason) -> usize {
        self.count_outcomes(|o| *o == UserOutcome::Skipped(why))
    }

    fn count_outcomes(&self, f: impl Fn(&UserOutcome) -> bool) -> usize {
        self.decisions.iter().filter(|(_, o)| f(o)).count()
    }
}

/// Decides the accounts, then the messages.
pub fn plan(
    source: &SourceData,
    target: &Target,
    on_conflict: OnConflict,
    on_invalid: OnInvalid,
) -> Plan {
    let mut plan = Plan::default();
    plan_users(source, target, on_conflict, on_invalid, &mut plan);
    plan_messages(source, target, &mut plan);
    plan
}

fn plan_users(
    source: &SourceData,
    target: &Target,
    on_conflict: OnConflict,
    on_invalid: OnInvalid,
    plan: &mut Plan,
) {
    let in_target: HashSet<Uuid> = target.users.iter().map(|(id, _)| *id).collect();
    let mut taken: HashMap<String, Holder> = target
        .users
        .iter()
        .map(|(id, name)| {
            let holder = Holder {
                id: *id,
                username: name.clone(),
                in_target: true,
            };
            (name.to_ascii_lowercase(), holder)
        })
        .collect();
    let mut users: Vec<SourceUser> = source.users.clone().unwrap_or_default();
    // The older account keeps a contested name.
    users.sort_by_key(|u| (u.created_at, u.id));
    for user in users {
        let outcome = if in_target.contains(&user.id) {
            UserOutcome::AlreadyThere
        } else {
            decide_name(&user, on_conflict, on_invalid, &mut taken, &mut plan.issues)
        };
        if let UserOutcome::Import { username } = &outcome {
            if !is_bcrypt(&user.password_hash) {
                plan.not_bcrypt.push((user.id, username.clone()));
            }
            plan.new_users.push(ImportedUser {
                id: user.id,
                username: username.clone(),
                password_hash: user.password_hash.clone(),
                created_at: millis(user.created_at),
            });
        }
        plan.decisions.push((user, outcome));
    }
}

fn decide_name(
    user: &SourceUser,
    on_conflict: OnConflict,
    on_invalid: OnInvalid,
    taken: &mut HashMap<String, Holder>,
    issues: &mut Vec<NameIssue>,
) -> UserOutcome {
    let mut name = user.username.clone();
    if validate_username(&name).is_err() {
        let mut issue = NameIssue {
            user_id: user.id,
            username: user.username.clone(),
            conflict_with: None,
            renamed_to: None,
            fatal: on_invalid == OnInvalid::Fail,
        };
        if on_invalid != OnInvalid::Rename {
            issues.push(issue);
            return UserOutcome::Skipped(SkipReason::InvalidName);
        }
        name = valid_name(&user.username, user.id);
        issue.renamed_to = Some(name.clone());
        issues.push(issue);
    }
    if let Some(holder) = taken.get(&name.to_ascii_lowercase()) {
        let mut issue = NameIssue {
            user_id: user.id,
            username: name.clone(),
            conflict_with: Some(holder.clone()),
            renamed_to: None,
            fatal: on_conflict == OnConflict::Fail,
        };
        if on_conflict != OnConflict::Suffix {
            issues.push(issue);
            return UserOutcome::Skipped(SkipReason::Conflict);
        }
        name = with_suffix(&name, taken);
        issue.renamed_to = Some(name.clone());
        issues.push(issue);
    }
    taken.insert(
        name.to_ascii_lowercase(),
        Holder {
            id: user.id,
            username: name.clone(),
            in_target: false,
        },
    );
    UserOutcome::Import { username: name }
}

/// The nearest name our rules accept: each refused character becomes `_`, at most 32 characters,
/// at least 3 (padded with `_`); a name with no letter or digit left becomes `user_<id>`.
pub fn valid_name(raw: &str, id: Uuid) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut name: String = raw
        .trim()
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(32)
        .collect();
    if !name.chars().any(|c| c.is_ascii_alphanumeric()) {
        return format!("user_{}", &id.simple().to_string()[..8]);
    }
    while name.len() < 3 {
        name.push('_');
    }
    name
}

/// `name_2`, `name_3`, … : the first that nobody has, cut to stay within 32 characters.
fn with_suffix(name: &str, taken: &HashMap<String, Holder>) -> String {
    (2..)
        .map(|n| {
            let tail = format!("_{n}");
            let base: String = name.chars().take(32 - tail.len()).collect();
            base + &tail
        })
        .find(|candidate| !taken.contains_key(&candidate.to_ascii_lowercase()))
        .unwrap_or_else(|| name.to_owned())
}

fn is_bcrypt(hash: &str) -> bool {
    hash.len() == 60
        && ["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .any(|p| hash.starts_with(p))
}

fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// What identifies an old message: who sent it to whom, when (to the millisecond) and what.
/// The old id cannot: it was `Date.now()`, shared by every message of a burst.
type Fingerprint = [u8; 16];

fn fingerprint(m: &SourceMessage) -> Fingerprint {
    let mut hash = Sha256::new();
    hash.update(m.sender.as_bytes());
    hash.update(m.receiver.as_bytes());
    hash.update(m.created_at.timestamp_millis().to_be_bytes());
    hash.update(m.content.as_bytes());
    let digest = hash.finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The `client_msg_id` of the `nth` message with this fingerprint (the unique index on
/// `(sender_id, client_msg_id)` then stores each at most once, whatever runs how often).
fn import_key(fp: &Fingerprint, nth: usize) -> String {
    let hex: String = fp.iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_PREFIX}{hex}:{nth}")
}

/// A time-ordered id (UUID v7) for the moment the old message was sent, as ours are.
fn id_at(t: DateTime<Utc>) -> Uuid {
    let ms = t.timestamp_millis().max(0) as u64;
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        ms / 1000,
        (ms % 1000) as u32 * 1_000_000,
    ))
}

fn plan_messages(source: &SourceData, target: &Target, plan: &mut Plan) {
    // A message can be in several places (a Redis list per direction, the table): it is one
    // message. Within one place each copy is a message of its own, so a fingerprint stands for
    // as many messages as the place holding it most often has.
    struct Item<'a> {
        message: &'a SourceMessage,
        fp: Fingerprint,
        nth: usize,
        order: (DateTime<Utc>, usize, usize),
    }
    let mut seen: HashMap<Fingerprint, usize> = HashMap::new();
    let mut items = Vec::new();
    for (place, view) in source.views.iter().enumerate() {
        let mut here: HashMap<Fingerprint, usize> = HashMap::new();
        for (position, message) in view.messages.iter().enumerate() {
            plan.entries += 1;
            let fp = fingerprint(message);
            let nth = here.entry(fp).or_default();
            let known = seen.entry(fp).or_default();
            if *nth < *known {
                plan.copies += 1;
            } else {
                items.push(Item {
                    message,
                    fp,
                    nth: *nth,
                    order: (message.created_at, place, position),
                });
                *known += 1;
            }
            *nth += 1;
        }
    }
    items.sort_by_key(|i| i.order);

    let imported: HashSet<Uuid> = target
        .users
        .iter()
        .map(|(id, _)| *id)
        .chain(plan.new_users.iter().map(|u| u.id))
        .collect();
    let skipped: HashMap<Uuid, SkipReason> = plan
        .decisions
        .iter()
        .filter_map(|(u, o)| match o {
            UserOutcome::Skipped(why) => Some((u.id, *why)),
            _ => None,
        })
        .collect();
    for item in items {
        let m = item.message;
        if m.sender == m.receiver {
            plan.to_themselves += 1;
            continue;
        }
        let absent: Vec<Uuid> = [m.sender, m.receiver]
            .into_iter()
            .filter(|id| !imported.contains(id))
            .collect();
        if !absent.is_empty() {
            plan.without_people += 1;
            for id in absent {
                let why = skipped
                    .get(&id)
                    .map_or(MissingWhy::Unknown, |r| MissingWhy::Skipped(*r));
                plan.missing.entry(id).or_insert((why, 0)).1 += 1;
            }
            continue;
        }
        plan.conversations
            .insert(Conversation::direct(m.sender, m.receiver).key());
        let key = import_key(&item.fp, item.nth);
        if target.imported.contains(&(m.sender, key.clone())) {
            plan.messages_there += 1;
            continue;
        }
        plan.new_messages.push(NewMessage {
            id: id_at(m.created_at),
            sender_id: m.sender,
            to: Recipient::User(m.receiver),
            content: m.content.clone(),
            client_msg_id: Some(key),
            created_at: Some(millis(m.created_at)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nest_import::source::View;

    fn user(name: &str, minute: i64) -> SourceUser {
        SourceUser {
            id: Uuid::new_v4(),
            username: name.into(),
            password_hash: "$2b$10$r6Cg.PZyNSnQA34JzfB9oeCELHGjVh2z4TThc4MEO9Qb8BE8YkcHi".into(),
            created_at: DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap(),
        }
    }

    fn msg(from: &SourceUser, to: &SourceUser, content: &str, ms: i64) -> SourceMessage {
        SourceMessage {
            sender: from.id,
            receiver: to.id,
            content: content.into(),
            created_at: DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap(),
        }
    }

    fn source(users: &[&SourceUser], views: Vec<Vec<SourceMessage>>) -> SourceData {
        SourceData {
            users: Some(users.iter().map(|u| (*u).clone()).collect()),
            views: views
                .into_iter()
                .map(|messages| View { messages })
                .collect(),
            ..SourceData::default()
        }
    }

    fn imported_name(plan: &Plan, id: Uuid) -> Option<&str> {
        plan.new_users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.username.as_str())
    }

    #[test]
    fn a_message_in_two_places_is_imported_once_and_a_burst_of_equal_sends_is_kept() {
        let (a, b) = (user("alice", 0), user("bob", 1));
        let hi = msg(&a, &b, "hi", 1);
        let ok = msg(&b, &a, "ok", 2);
        // Both directions' lists hold "hi"; the table has it too; bob said "ok" twice in one ms.
        let data = source(
            &[&a, &b],
            vec![
                vec![hi.clone(), ok.clone(), ok.clone()],
                vec![hi.clone()],
                vec![hi.clone(), ok.clone()],
            ],
        );
        let plan = plan(
            &data,
            &Target::default(),
            OnConflict::Fail,
            OnInvalid::Rename,
        );
        let contents: Vec<&str> = plan
            .new_messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(contents, ["hi", "ok", "ok"]);
        assert_eq!((plan.entries, plan.copies), (6, 3));
        let keys: HashSet<_> = plan
            .new_messages
            .iter()
            .map(|m| m.client_msg_id.clone())
            .collect();
        assert_eq!(keys.len(), 3, "each message has its own import key");
    }

    #[test]
    fn messages_are_ordered_by_their_original_time_across_places() {
        let (a, b) = (user("alice", 0), user("bob", 1));
        let data = source(
            &[&a, &b],
            vec![
                vec![msg(&a, &b, "second", 20)],
                vec![msg(&b, &a, "first", 10), msg(&b, &a, "third", 30)],
            ],
        );
        let plan = plan(
            &data,
            &Target::default(),
            OnConflict::Fail,
            OnInvalid::Rename,
        );
        let contents: Vec<&str> = plan
            .new_messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(contents, ["first", "second", "third"]);
        let ids: Vec<Uuid> = plan.new_messages.iter().map(|m| m.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "new ids are time-ordered like the messages");
    }

    #[test]
    fn what_an_earlier_run_imported_is_not_planned_again() {
        let (a, b) = (user("alice", 0), user("bob", 1));
        let data = source(
            &[&a, &b],
            vec![vec![msg(&a, &b, "one", 1), msg(&a, &b, "two", 2)]],
        );
        let first = plan(
            &data,
            &Target::default(),
            OnConflict::Fail,
            OnInvalid::Rename,
        );
        let target = Target {
            users: first
                .new_users
                .iter()
                .map(|u| (u.id, u.username.clone()))
                .collect(),
            imported: first
                .new_messages
                .iter()
                .map(|m| (m.sender_id, m.client_msg_id.clone().unwrap()))
                .collect(),
        };
        let second = plan(&data, &target, OnConflict::Fail, OnInvalid::Rename);
        assert!(second.new_users.is_empty() && second.new_messages.is_empty());
        assert_eq!(
            (second.users_already_there(), second.messages_there),
            (2, 2)
        );
    }

    #[test]
    fn a_name_taken_in_another_case_is_resolved_by_the_flag() {
        let older = user("Alice", 0);
        let newer = user("alice", 5);
        let bob = user("bob", 1);
        let target = Target {
            users: vec![(Uuid::new_v4(), "BOB".into())],
            ..Target::default()
        };
        let data = source(&[&newer, &older, &bob], vec![]);

        let fail = plan(&data, &target, OnConflict::Fail, OnInvalid::Rename);
        assert!(fail.must_fail());
        assert_eq!(fail.issues.len(), 2);

        let skip = plan(&data, &target, OnConflict::Skip, OnInvalid::Rename);
        assert!(!skip.must_fail());
        assert_eq!(
            imported_name(&skip, older.id),
            Some("Alice"),
            "the older account keeps its name"
        );
        assert_eq!(imported_name(&skip, newer.id), None);
        assert_eq!(
            imported_name(&skip, bob.id),
            None,
            "the target's account keeps its name"
        );
        assert_eq!(skip.users_skipped(SkipReason::Conflict), 2);

        let suffix = plan(&data, &target, OnConflict::Suffix, OnInvalid::Rename);
        assert_eq!(imported_name(&suffix, newer.id), Some("alice_2"));
        assert_eq!(imported_name(&suffix, bob.id), Some("bob_2"));
        let holder = suffix.issues.iter().find(|i| i.user_id == bob.id).unwrap();
        assert!(holder.conflict_with.as_ref().unwrap().in_target);
    }

    #[test]
    fn refused_names_are_renamed_or_skipped_and_always_reported() {
        let spaced = user("al ice", 0);
        let short = user("x", 1);
        let symbols = user("***", 2);
        let data = source(&[&spaced, &short, &symbols], vec![]);
        let renamed = plan(
            &data,
            &Target::default(),
            OnConflict::Fail,
            OnInvalid::Rename,
        );
        assert_eq!(imported_name(&renamed, spaced.id), Some("al_ice"));
        assert_eq!(imported_name(&renamed, short.id), Some("x__"));
        let fallback = format!("user_{}", &symbols.id.simple().to_string()[..8]);
        assert_eq!(imported_name(&renamed, symbols.id), Some(fallback.as_str()));
        assert_eq!(renamed.issues.len(), 3);
        for name in renamed.new_users.iter().map(|u| &u.username) {
            assert!(validate_username(name).is_ok(), "{name} is valid");
        }
        let skipped = plan(&data, &Target::default(), OnConflict::Fail, OnInvalid::Skip);
        assert!(skipped.new_users.is_empty());
        assert_eq!(skipped.users_skipped(SkipReason::InvalidName), 3);
        assert!(plan(&data, &Target::default(), OnConflict::Fail, OnInvalid::Fail).must_fail());
    }

    #[test]
    fn messages_of_people_left_out_are_counted_per_person() {
        let (a, b) = (user("alice", 0), user("Alice", 1));
        let stranger = user("ghost", 2);
        let data = source(
            &[&a, &b],
            vec![vec![
                msg(&a, &b, "1", 1),
                msg(&a, &stranger, "2", 2),
                msg(&a, &a, "3", 3),
            ]],
        );
        let plan = plan(
            &data,
            &Target::default(),
            OnConflict::Skip,
            OnInvalid::Rename,
        );
        assert!(plan.new_messages.is_empty());
        assert_eq!((plan.without_people, plan.to_themselves), (2, 1));
        assert_eq!(
            plan.missing[&b.id],
            (MissingWhy::Skipped(SkipReason::Conflict), 1)
        );
        assert_eq!(plan.missing[&stranger.id], (MissingWhy::Unknown, 1));
    }

    #[test]
    fn long_names_stay_within_32_characters_with_a_suffix() {
        let mut taken = HashMap::new();
        let long = "a".repeat(32);
        let holder = Holder {
            id: Uuid::nil(),
            username: long.clone(),
            in_target: true,
        };
        taken.insert(long.clone(), holder);
        let name = with_suffix(&long, &taken);
        assert_eq!(name.len(), 32);
        assert!(name.ends_with("_2"));
    }
}
