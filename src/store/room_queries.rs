//! The SQL of rooms and the user directory, written once and compiled for each backend like
//! `queries.rs`. Every membership change is one transaction that starts by locking its room's
//! row (an `UPDATE`, which takes PostgreSQL's row lock and SQLite's write lock at once), checks
//! the rules inside it and bumps the room's membership version.

macro_rules! room_queries {
    () => {
        use crate::store::Refusal;
        use crate::store::models::{MemberRow, RoomRow};
        use crate::store::rooms::{NewRoom, RoomLimits, TxError};

        const ROOM_COLUMNS: (rooms::id, rooms::name, rooms::created_at, rooms::version) =
            (rooms::id, rooms::name, rooms::created_at, rooms::version);

        /// The role of `user` in `room` ("owner" or "member"), if they are in it.
        async fn role_of(conn: &mut Conn, room: DbId, user: DbId) -> QueryResult<Option<String>> {
            room_members::table
                .filter(room_members::room_id.eq(room))
                .filter(room_members::user_id.eq(user))
                .select(room_members::role)
                .first(conn)
                .await
                .optional()
        }

        /// The room's row and its members, earliest first.
        pub async fn room_with_members(
            conn: &mut Conn,
            room: DbId,
        ) -> QueryResult<Option<(RoomRow, Vec<MemberRow>)>> {
            let Some(row) = rooms::table
                .find(room)
                .select(ROOM_COLUMNS)
                .first::<RoomRow>(conn)
                .await
                .optional()?
            else {
                return Ok(None);
            };
            let members = room_members::table
                .inner_join(users::table.on(users::id.eq(room_members::user_id)))
                .left_join(messages::table.on(messages::seq.nullable().eq(room_members::read_seq)))
                .filter(room_members::room_id.eq(room))
                // Earliest first; the owner first among those who joined together.
                .order((
                    room_members::joined_at.asc(),
                    room_members::role.desc(),
                    room_members::user_id.asc(),
                ))
                .select((
                    USER_COLUMNS,
                    room_members::role,
                    room_members::joined_at,
                    messages::id.nullable(),
                ))
                .load::<MemberRow>(conn)
                .await?;
            Ok(Some((row, members)))
        }

        /// The room's membership version and member ids.
        pub async fn member_ids(
            conn: &mut Conn,
            room: DbId,
        ) -> QueryResult<Option<(i64, Vec<DbId>)>> {
            let Some(version) = rooms::table
                .find(room)
                .select(rooms::version)
                .first::<i64>(conn)
                .await
                .optional()?
            else {
                return Ok(None);
            };
            let ids = room_members::table
                .filter(room_members::room_id.eq(room))
                .select(room_members::user_id)
                .load(conn)
                .await?;
            Ok(Some((version, ids)))
        }

        /// Locks the room's row for the rest of the transaction; `false` if there is no room.
        async fn lock_room(conn: &mut Conn, room: DbId) -> QueryResult<bool> {
            diesel::update(rooms::table.find(room))
                .set(rooms::version.eq(rooms::version))
                .execute(conn)
                .await
                .map(|n| n == 1)
        }

        async fn bump_version(conn: &mut Conn, room: DbId) -> QueryResult<()> {
            diesel::update(rooms::table.find(room))
                .set(rooms::version.eq(rooms::version + 1))
                .execute(conn)
                .await
                .map(drop)
        }

        /// Refuses unless every id names a user.
        async fn require_users(conn: &mut Conn, ids: &[DbId]) -> Result<(), TxError> {
            let found: i64 = users::table
                .filter(users::id.eq_any(ids))
                .count()
                .get_result(conn)
                .await?;
            if found as usize == ids.len() {
                Ok(())
            } else {
                Err(TxError::Refused(Refusal::UnknownUser))
            }
        }

        /// Refuses if any of `ids` is already in `max` rooms.
        async fn require_room_space(
            conn: &mut Conn,
            ids: &[DbId],
            max: u32,
        ) -> Result<(), TxError> {
            lock_users(conn, ids).await?;
            let full: i64 = room_members::table
                .filter(room_members::user_id.eq_any(ids))
                .group_by(room_members::user_id)
                .having(diesel::dsl::count_star().ge(i64::from(max)))
                .select(room_members::user_id)
                .load::<DbId>(conn)
                .await?
                .len() as i64;
            if full == 0 {
                Ok(())
            } else {
                Err(TxError::Refused(Refusal::TooManyRooms))
            }
        }

        async fn insert_members(
            conn: &mut Conn,
            room: DbId,
            ids: &[DbId],
            role: &str,
            joined_at: chrono::DateTime<chrono::Utc>,
        ) -> QueryResult<()> {
            // A member who left and comes back finds its earlier messages still there: they
            // count as its own (`sent`), not as unread messages from others.
            let earlier: Vec<(DbId, i64)> = messages::table
                .filter(messages::room_id.eq(room))
                .filter(messages::sender_id.eq_any(ids))
                .group_by(messages::sender_id)
                .select((messages::sender_id, diesel::dsl::count_star()))
                .load(conn)
                .await?;
            for id in ids {
                let sent = earlier
                    .iter()
                    .find(|(sender, _)| sender == id)
                    .map_or(0, |(_, n)| *n);
                diesel::insert_into(room_members::table)
                    .values((
                        room_members::room_id.eq(room),
                        room_members::user_id.eq(*id),
                        room_members::role.eq(role),
                        room_members::joined_at.eq(joined_at),
                        room_members::sent.eq(sent),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(())
        }

        /// Creates a room with its owner and members in one transaction.
        pub async fn create_room(
            conn: &mut Conn,
            room: &NewRoom,
            limits: RoomLimits,
        ) -> Result<(), TxError> {
            if room.members.len() + 1 > limits.max_members as usize {
                return Err(TxError::Refused(Refusal::RoomFull));
            }
            conn.transaction::<_, TxError, _>(async |conn| {
                let id = DbId(room.id);
                diesel::insert_into(rooms::table)
                    .values((
                        rooms::id.eq(id),
                        rooms::name.eq(&room.name),
                        rooms::created_at.eq(room.created_at),
                    ))
                    .execute(conn)
                    .await?;
                let mut everyone: Vec<DbId> = vec![DbId(room.owner)];
                everyone.extend(room.members.iter().copied().map(DbId));
                require_users(conn, &everyone).await?;
                require_room_space(conn, &everyone, limits.max_rooms_per_user).await?;
                insert_members(conn, id, &everyone[..1], "owner", room.created_at).await?;
                insert_members(conn, id, &everyone[1..], "member", room.created_at).await?;
                Ok(())
            })
            .await
        }

        /// Renames a room; only its owner may.
        pub async fn rename_room(
            conn: &mut Conn,
            room: DbId,
            caller: DbId,
            name: &str,
        ) -> Result<(), TxError> {
            conn.transaction::<_, TxError, _>(async |conn| {
                if !lock_room(conn, room).await? {
                    return Err(TxError::Refused(Refusal::NotFound));
                }
                match role_of(conn, room, caller).await?.as_deref() {
                    None => return Err(TxError::Refused(Refusal::NotFound)),
                    Some("owner") => {}
                    Some(_) => return Err(TxError::Refused(Refusal::Forbidden)),
                }
                diesel::update(rooms::table.find(room))
                    .set(rooms::name.eq(name))
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await
        }

        /// Adds the users of `ids` who are not members yet; only the owner may. Returns those
        /// added (none: nothing changed).
        pub async fn add_members(
            conn: &mut Conn,
            room: DbId,
            caller: DbId,
            ids: &[DbId],
            joined_at: chrono::DateTime<chrono::Utc>,
            limits: RoomLimits,
        ) -> Result<Vec<DbId>, TxError> {
            conn.transaction::<_, TxError, _>(async |conn| {
                if !lock_room(conn, room).await? {
                    return Err(TxError::Refused(Refusal::NotFound));
                }
                match role_of(conn, room, caller).await?.as_deref() {
                    None => return Err(TxError::Refused(Refusal::NotFound)),
                    Some("owner") => {}
                    Some(_) => return Err(TxError::Refused(Refusal::Forbidden)),
                }
                require_users(conn, ids).await?;
                let current: Vec<DbId> = room_members::table
                    .filter(room_members::room_id.eq(room))
                    .select(room_members::user_id)
                    .load(conn)
                    .await?;
                let added: Vec<DbId> = ids
                    .iter()
                    .copied()
                    .filter(|id| !current.contains(id))
                    .collect();
                if added.is_empty() {
                    return Ok(added);
                }
                if current.len() + added.len() > limits.max_members as usize {
                    return Err(TxError::Refused(Refusal::RoomFull));
                }
                require_room_space(conn, &added, limits.max_rooms_per_user).await?;
                insert_members(conn, room, &added, "member", joined_at).await?;
                bump_version(conn, room).await?;
                Ok(added)
            })
            .await
        }

        /// Removes `target` from the room: the owner may remove anyone, anyone may remove
        /// themselves. An owner who leaves hands the room to the earliest member; the last member
        /// to leave deletes the room and its messages. Returns whether the room still exists.
        pub async fn remove_member(
            conn: &mut Conn,
            room: DbId,
            caller: DbId,
            target: DbId,
        ) -> Result<bool, TxError> {
            conn.transaction::<_, TxError, _>(async |conn| {
                if !lock_room(conn, room).await? {
                    return Err(TxError::Refused(Refusal::NotFound));
                }
                let caller_role = role_of(conn, room, caller)
                    .await?
                    .ok_or(TxError::Refused(Refusal::NotFound))?;
                let target_role = if target == caller {
                    caller_role
                } else if caller_role != "owner" {
                    return Err(TxError::Refused(Refusal::Forbidden));
                } else {
                    role_of(conn, room, target)
                        .await?
                        .ok_or(TxError::Refused(Refusal::NotAMember))?
                };
                diesel::delete(
                    room_members::table
                        .filter(room_members::room_id.eq(room))
                        .filter(room_members::user_id.eq(target)),
                )
                .execute(conn)
                .await?;
                let heir: Option<DbId> = room_members::table
                    .filter(room_members::room_id.eq(room))
                    .order((room_members::joined_at.asc(), room_members::user_id.asc()))
                    .select(room_members::user_id)
                    .first(conn)
                    .await
                    .optional()?;
                let Some(heir) = heir else {
                    diesel::delete(messages::table.filter(messages::room_id.eq(room)))
                        .execute(conn)
                        .await?;
                    diesel::delete(rooms::table.find(room))
                        .execute(conn)
                        .await?;
                    return Ok(false);
                };
                if target_role == "owner" {
                    diesel::update(
                        room_members::table
                            .filter(room_members::room_id.eq(room))
                            .filter(room_members::user_id.eq(heir)),
                    )
                    .set(room_members::role.eq("owner"))
                    .execute(conn)
                    .await?;
                }
                bump_version(conn, room).await?;
                Ok(true)
            })
            .await
        }

        /// The rooms `user` is a member of, newest activity first, with member counts and their
        /// newest message.
        pub async fn rooms_of(
            conn: &mut Conn,
            user: DbId,
            limit: i64,
        ) -> QueryResult<Vec<(RoomRow, i64, Option<MessageRow>, i64)>> {
            let rows: Vec<(RoomRow, Option<MessageRow>, i64)> = room_members::table
                .inner_join(rooms::table.on(rooms::id.eq(room_members::room_id)))
                .left_join(messages::table.on(messages::seq.nullable().eq(rooms::last_seq)))
                .filter(room_members::user_id.eq(user))
                .order(rooms::last_seq.desc())
                .limit(limit)
                .select((
                    ROOM_COLUMNS,
                    MESSAGE_COLUMNS.nullable(),
                    (rooms::message_count - room_members::seen)
                        - (room_members::sent - room_members::sent_seen),
                ))
                .load(conn)
                .await?;
            let ids: Vec<DbId> = rows.iter().map(|(r, _, _)| r.id).collect();
            let counts: std::collections::HashMap<DbId, i64> = room_members::table
                .filter(room_members::room_id.eq_any(&ids))
                .group_by(room_members::room_id)
                .select((room_members::room_id, diesel::dsl::count_star()))
                .load::<(DbId, i64)>(conn)
                .await?
                .into_iter()
                .collect();
            Ok(rows
                .into_iter()
                .map(|(room, last, unread)| {
                    let count = counts.get(&room.id).copied().unwrap_or(0);
                    (room, count, last, unread)
                })
                .collect())
        }

        /// Users whose lower-cased name is LIKE `pattern`, but `me`, by name; at most `limit`.
        pub async fn users_matching(
            conn: &mut Conn,
            pattern: &str,
            me: DbId,
            limit: i64,
        ) -> QueryResult<Vec<UserRow>> {
            users::table
                .filter(lower(users::username).like(pattern).escape('\\'))
                .filter(users::id.ne(me))
                .order(lower(users::username).asc())
                .limit(limit)
                .select(USER_COLUMNS)
                .load(conn)
                .await
        }
    };
}

pub(crate) use room_queries;
