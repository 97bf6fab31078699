import { describe, expect, it } from 'vitest';
import { applyMessageToConversations, normalizeConversations, peerIdOf, sidebarEntries } from './conversations.js';

const at = (s) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const message = (id, senderId, receiverId, s) => ({ id, content: id, senderId, receiverId, createdAt: at(s) });
const conv = (id, username, online, last) => ({ peer: { id, username, online }, lastMessage: last });

describe('the conversation list', () => {
  it('sorts the API list newest first and drops malformed rows', () => {
    const list = normalizeConversations([
      conv('b', 'bob', false, message('m1', 'me', 'b', 1)),
      { peer: null },
      conv('c', 'cy', true, message('m2', 'c', 'me', 2)),
    ]);
    expect(list.map((c) => c.peer.id)).toEqual(['c', 'b']);
    expect(normalizeConversations({ statusCode: 401 })).toEqual([]);
  });

  it('moves a conversation to the top on a new message', () => {
    let list = normalizeConversations([conv('b', 'bob', false, message('m1', 'me', 'b', 1)), conv('c', 'cy', true, message('m2', 'c', 'me', 2))]);
    list = applyMessageToConversations(list, message('m3', 'b', 'me', 3), { myId: 'me' });
    expect(list.map((c) => c.peer.id)).toEqual(['b', 'c']);
    expect(list[0].lastMessage.id).toBe('m3');
    expect(list[0].peer.username).toBe('bob');
  });

  it('starts a conversation on a first message', () => {
    const list = applyMessageToConversations([], message('m1', 'me', 'd', 1), { myId: 'me', peer: { id: 'd', username: 'dee', online: true } });
    expect(list).toEqual([{ key: 'd', kind: 'direct', peer: { id: 'd', username: 'dee', online: true }, lastMessage: expect.objectContaining({ id: 'm1' }) }]);
  });

  it('keeps the newer preview when an older message arrives late', () => {
    const list = normalizeConversations([conv('b', 'bob', false, message('m5', 'b', 'me', 5))]);
    expect(applyMessageToConversations(list, message('m1', 'b', 'me', 1), { myId: 'me' })).toBe(list);
  });

  it('finds the peer of a message from either side', () => {
    expect(peerIdOf(message('x', 'me', 'b', 1), 'me')).toBe('b');
    expect(peerIdOf(message('x', 'b', 'me', 1), 'me')).toBe('b');
  });
});

describe('the sidebar rows', () => {
  const conversations = normalizeConversations([
    conv('b', 'bob', false, message('m1', 'me', 'b', 1)),
    conv('c', 'cy', true, message('m2', 'c', 'me', 2)),
  ]);
  const onlineUsers = [
    { id: 'me', username: 'me' },
    { id: 'z', username: 'zed' },
    { id: 'a', username: 'amy' },
    { id: 'b', username: 'bob' },
  ];

  it('lists conversations (offline peers included) and then other online users by name, never the caller', () => {
    const rows = sidebarEntries({ conversations, onlineUsers, online: new Set(['me', 'z', 'a', 'b']), presenceReady: true, myId: 'me' });
    expect(rows.map((r) => [r.username, r.online])).toEqual([
      ['cy', false],
      ['bob', true],
      ['amy', true],
      ['zed', true],
    ]);
  });

  it('uses the API presence until the socket reported who is online', () => {
    const rows = sidebarEntries({ conversations, onlineUsers: [], online: new Set(), presenceReady: false, myId: 'me' });
    expect(rows.map((r) => r.online)).toEqual([true, false]);
  });

  it('hides users who went offline unless there is a conversation with them', () => {
    const rows = sidebarEntries({ conversations, onlineUsers, online: new Set(['me']), presenceReady: true, myId: 'me' });
    expect(rows.map((r) => r.username)).toEqual(['cy', 'bob']);
  });

  it('filters by a search query and carries unread counts', () => {
    const rows = sidebarEntries({
      conversations,
      onlineUsers,
      online: new Set(['a', 'z']),
      presenceReady: true,
      myId: 'me',
      unread: { c: 3 },
      query: ' C',
    });
    expect(rows).toEqual([expect.objectContaining({ username: 'cy', unread: 3 })]);
  });
});

describe('rooms beside direct chats', () => {
  it('merges rooms and direct chats most recent first; a room without messages sorts by its creation', async () => {
    const { upsertRoom } = await import('./conversations.js');
    let list = normalizeConversations([
      conv('b', 'bob', false, message('m3', 'b', 'me', 30)),
      { room: { id: 'r1', name: 'Team', memberCount: 3 }, lastMessage: { id: 'm2', content: 'x', senderId: 'c', roomId: 'r1', createdAt: at(20) }, unread: 1 },
      conv('c', 'cy', true, message('m1', 'c', 'me', 10)),
    ]);
    expect(list.map((c) => c.key)).toEqual(['b', 'room:r1', 'c']);
    list = upsertRoom(list, { id: 'r2', name: 'New', createdAt: at(25), members: [{ id: 'me' }] });
    expect(list.map((c) => c.key)).toEqual(['b', 'room:r2', 'room:r1', 'c']);
    list = applyMessageToConversations(list, { id: 'm4', content: 'y', senderId: 'c', roomId: 'r1', createdAt: at(40) }, { myId: 'me' });
    expect(list.map((c) => c.key)).toEqual(['room:r1', 'b', 'room:r2', 'c']);
    expect(list[0].room.name).toBe('Team');
  });

  it('keeps the server’s place for an empty room whose creation time the list does not give', () => {
    const list = normalizeConversations([
      conv('b', 'bob', false, message('m3', 'b', 'me', 30)),
      { room: { id: 'r1', name: 'Quiet', memberCount: 2 }, lastMessage: null, unread: 0 },
      conv('c', 'cy', true, message('m1', 'c', 'me', 10)),
    ]);
    expect(list.map((c) => c.key)).toEqual(['b', 'room:r1', 'c']);
    const top = normalizeConversations([{ room: { id: 'r1', name: 'Quiet', memberCount: 2 }, lastMessage: null }, conv('b', 'bob', false, message('m3', 'b', 'me', 30))], new Date(Date.UTC(2026, 0, 2)));
    expect(top.map((c) => c.key)).toEqual(['room:r1', 'b']);
  });

  it('lists rooms by name in the sidebar and finds offline people through the directory', () => {
    const list = normalizeConversations([
      { room: { id: 'r1', name: 'Bob’s climbing', memberCount: 3 }, lastMessage: null },
      conv('b', 'bob', false, message('m1', 'me', 'b', 1)),
    ]);
    const directory = [
      { id: 'b', username: 'bob', online: false },
      { id: 'o', username: 'bobby', online: false },
      { id: 'me', username: 'bo-me', online: true },
    ];
    const rows = sidebarEntries({ conversations: list, onlineUsers: [], online: new Set(), presenceReady: true, myId: 'me', query: 'bob', directory, unread: { 'room:r1': 2 } });
    expect(rows.map((r) => [r.kind, r.name ?? r.username, r.section])).toEqual([
      ['room', 'Bob’s climbing', 'chats'],
      ['direct', 'bob', 'chats'],
      ['direct', 'bobby', 'people'],
    ]);
    expect(rows[0]).toMatchObject({ unread: 2, memberCount: 3 });
  });
});
