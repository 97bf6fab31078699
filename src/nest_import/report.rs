//! The import's report: what was read, what needs a decision, and what will be written. The same
//! text for a dry run and a real run; every account or message left out is counted, and every
//! username problem is listed one per line.

use std::{collections::BTreeMap, fmt::Write};

use super::{
    plan::{MissingWhy, OnConflict, OnInvalid, Plan, SkipReason},
    source::{SourceData, Sources},
};

/// Report text, built section by section.
#[derive(Default)]
pub struct Report {
    text: String,
}

macro_rules! line {
    ($report:expr, $($arg:tt)*) => {{
        let _ = writeln!($report.text, $($arg)*);
    }};
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Report {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn sources(&mut self, data: &SourceData, sources: &Sources<'_>) {
        line!(self, "Read from the NestJS app:");
        if let Some(users) = &data.users {
            let s = &data.stats;
            let mut parts = vec![plural(users.len(), "account", "accounts")];
            match s.message_rows {
                Some(rows) => parts.push(format!(
                    "{} in messages ({} in group rooms, {} without a receiver)",
                    plural(rows, "row", "rows"),
                    s.group_rows,
                    s.rows_without_receiver
                )),
                None => parts.push("no messages table".into()),
            }
            match s.group_rooms {
                Some(groups) => parts.push(format!(
                    "chat_rooms: {} group, {} other",
                    groups, s.direct_rooms
                )),
                None => parts.push("no chat_rooms table".into()),
            }
            line!(self, "  PostgreSQL: {}", parts.join(", "));
            if let Some(zone) = &s.time_zone {
                line!(self, "    timestamps without a time zone read as {zone}");
            }
        } else {
            line!(
                self,
                "  PostgreSQL: not given (no accounts are imported; messages need accounts already in the target)"
            );
        }
        if data.stats.redis_read {
            let s = &data.stats;
            line!(
                self,
                "  Redis: {} under {:?}, {}",
                plural(s.redis_lists, "history list", "history lists"),
                sources.redis_key_prefix,
                plural(s.redis_entries, "entry", "entries")
            );
            if !s.redis_other_keys.is_empty() {
                line!(
                    self,
                    "    {} under the prefix {} not a list, left alone: {}",
                    plural(s.redis_other_keys.len(), "key", "keys"),
                    if s.redis_other_keys.len() == 1 {
                        "is"
                    } else {
                        "are"
                    },
                    sample(&s.redis_other_keys, 5)
                );
            }
        } else {
            line!(
                self,
                "  Redis: not given (its history lists hold most of the old messages)"
            );
        }
        if !data.unreadable.is_empty() {
            let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for u in &data.unreadable {
                by_reason.entry(&u.reason).or_default().push(&u.place);
            }
            line!(
                self,
                "  Unreadable, not imported: {}",
                plural(data.unreadable.len(), "entry", "entries")
            );
            for (reason, places) in by_reason {
                let places: Vec<String> = places.iter().map(|p| p.to_string()).collect();
                line!(
                    self,
                    "    {} × {reason}: {}",
                    places.len(),
                    sample(&places, 3)
                );
            }
        }
    }

    pub fn target(&mut self, description: &str, users: usize) {
        line!(
            self,
            "Target: {description} ({} now)",
            plural(users, "account", "accounts")
        );
    }

    pub fn plan(
        &mut self,
        plan: &Plan,
        read_users: bool,
        on_conflict: OnConflict,
        on_invalid: OnInvalid,
    ) {
        if !plan.issues.is_empty() {
            line!(self, "\nUsernames that need a decision:");
            for issue in &plan.issues {
                let problem = match &issue.conflict_with {
                    None => "refused by our rules (3 to 32 characters: letters, digits, _ . -)"
                        .to_owned(),
                    Some(holder) => format!(
                        "taken by {:?} ({}, {})",
                        holder.username,
                        holder.id,
                        if holder.in_target {
                            "already in the target"
                        } else {
                            "an older account of the old app"
                        }
                    ),
                };
                let flag = match &issue.conflict_with {
                    None => format!("--on-invalid-username {}", flag_name(on_invalid)),
                    Some(_) => format!("--on-conflict {}", flag_conflict(on_conflict)),
                };
                let resolution = match (&issue.renamed_to, issue.fatal) {
                    (_, true) => "the import fails".to_owned(),
                    (Some(new), false) => format!("imported as {new:?}"),
                    (None, false) => "left out".to_owned(),
                };
                line!(
                    self,
                    "  {:?} ({}): {problem}: {resolution} ({flag})",
                    issue.username,
                    issue.user_id
                );
            }
        }

        line!(self, "\nAccounts:");
        let found = plan.decisions.len();
        if !read_users {
            line!(
                self,
                "  none read (no --source-database-url): messages are imported between accounts the target already has"
            );
        } else {
            line!(
                self,
                "  {} in the old app: {} to import, {} already imported, {} left out (username taken), {} left out (username refused)",
                found,
                plan.new_users.len(),
                plan.users_already_there(),
                plan.users_skipped(SkipReason::Conflict),
                plan.users_skipped(SkipReason::InvalidName)
            );
        }
        if !plan.not_bcrypt.is_empty() {
            let names: Vec<String> = plan
                .not_bcrypt
                .iter()
                .map(|(id, name)| format!("{name:?} ({id})"))
                .collect();
            line!(
                self,
                "  {} a password hash that is not bcrypt: imported, but cannot sign in with a password: {}",
                plural(names.len(), "account has", "accounts have"),
                names.join(", ")
            );
        }

        line!(self, "\nMessages:");
        line!(
            self,
            "  {} read, {} another place's copy: {} direct messages",
            plural(plan.entries, "entry", "entries"),
            plan.copies,
            plan.entries - plan.copies
        );
        line!(
            self,
            "  {} to import, {} already imported, {} left out (sender or receiver not imported), {} left out (sent to themselves)",
            plan.new_messages.len(),
            plan.messages_there,
            plan.without_people,
            plan.to_themselves
        );
        if !plan.missing.is_empty() {
            line!(self, "  People not imported, and the messages naming them:");
            let names: BTreeMap<_, _> = plan
                .decisions
                .iter()
                .map(|(u, _)| (u.id, u.username.as_str()))
                .collect();
            for (id, (why, n)) in &plan.missing {
                let why = match why {
                    MissingWhy::Skipped(SkipReason::Conflict) => "username taken",
                    MissingWhy::Skipped(SkipReason::InvalidName) => "username refused",
                    MissingWhy::Unknown => "no such account in the old database or the target",
                };
                let name = names.get(id).map(|n| format!("{n:?} ")).unwrap_or_default();
                line!(
                    self,
                    "    {name}{id} ({why}): {}",
                    plural(*n, "message", "messages")
                );
            }
        }
    }

    /// The groups that cannot become direct messages.
    pub fn groups(&mut self, data: &SourceData) {
        let s = &data.stats;
        let rooms = s.group_rooms.unwrap_or(0);
        if rooms + s.group_rows + s.rows_without_receiver == 0 {
            return;
        }
        line!(
            self,
            "\nGroups (not imported: only direct messages are): {}, {} in them, {} without a receiver",
            plural(rooms, "group room", "group rooms"),
            plural(s.group_rows, "message", "messages"),
            plural(s.rows_without_receiver, "message", "messages")
        );
    }
}

fn sample(items: &[String], n: usize) -> String {
    let mut out = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        let _ = write!(out, ", and {} more", items.len() - n);
    }
    out
}

fn flag_name(p: OnInvalid) -> &'static str {
    match p {
        OnInvalid::Rename => "rename",
        OnInvalid::Skip => "skip",
        OnInvalid::Fail => "fail",
    }
}

fn flag_conflict(p: OnConflict) -> &'static str {
    match p {
        OnConflict::Fail => "fail",
        OnConflict::Skip => "skip",
        OnConflict::Suffix => "suffix",
    }
}
