import { describe, expect, it } from 'vitest';
import { advanceCursor, afterSyncPage, syncRequest } from './sync.js';

const m = (id, second) => ({ id, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString() });

describe('the sync cursor', () => {
  it('starts empty, so there is nothing to sync from', () => {
    expect(syncRequest(null)).toBeNull();
  });

  it('follows the newest message seen and never moves back', () => {
    let cursor = advanceCursor(null, [m('a', 1), m('c', 3)]);
    cursor = advanceCursor(cursor, [m('b', 2)]);
    expect(cursor.id).toBe('c');
    expect(syncRequest(cursor, 100)).toEqual({ after: 'c', limit: 100 });
  });

  it('takes the later arrival of two messages with the same time stamp', () => {
    expect(advanceCursor(null, [m('a', 1), m('b', 1)]).id).toBe('b');
  });

  it('ignores entries without an id or a time', () => {
    expect(advanceCursor(null, [{ id: 'x' }, null, { createdAt: 'x' }])).toBeNull();
  });
});

describe('paging through message:sync', () => {
  it('continues after the last message of a page while hasMore', () => {
    const step = afterSyncPage({ after: 'a' }, { messages: [m('b', 2), m('c', 3)], hasMore: true }, 2);
    expect(step.next).toEqual({ after: 'c', limit: 2 });
    expect(step.messages).toHaveLength(2);
  });

  it('stops when the server says there is no more', () => {
    expect(afterSyncPage({ after: 'a' }, { messages: [m('b', 2)], hasMore: false }).next).toBeNull();
  });

  it('stops instead of spinning on an empty page that claims more', () => {
    expect(afterSyncPage({ after: 'a' }, { messages: [], hasMore: true }).next).toBeNull();
    expect(afterSyncPage({ after: 'a' }, { messages: [m('a', 1)], hasMore: true }).next).toBeNull();
  });

  it('treats a malformed result as nothing to merge', () => {
    expect(afterSyncPage({ after: 'a' }, { error: { code: 'internal' } })).toEqual({ messages: [], next: null });
  });
});
