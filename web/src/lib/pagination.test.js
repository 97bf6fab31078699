import { describe, expect, it } from 'vitest';
import { applyHistoryPage, canLoadOlder, emptyThread, historyRequest, oldestId, PAGE_SIZE } from './pagination.js';

function page(from, to) {
  const list = [];
  for (let n = from; n <= to; n += 1) {
    list.push({
      id: `m${n}`,
      content: `message ${n}`,
      senderId: 'a',
      receiverId: 'b',
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, n)).toISOString(),
    });
  }
  return list;
}

describe('paging back through a conversation', () => {
  it('asks for the latest page first, then for the page before the oldest loaded id', () => {
    let thread = emptyThread();
    expect(historyRequest('b', thread)).toEqual({ receiverId: 'b', limit: PAGE_SIZE });
    thread = applyHistoryPage(thread, page(71, 120), { limit: 50 });
    expect(oldestId(thread.messages)).toBe('m71');
    expect(historyRequest('b', thread, { older: true, limit: 50 })).toEqual({ receiverId: 'b', limit: 50, before: 'm71' });
  });

  it('walks the whole history and stops on a short page', () => {
    let thread = applyHistoryPage(emptyThread(), page(71, 120), { limit: 50 });
    expect(thread.hasMore).toBe(true);
    expect(canLoadOlder(thread)).toBe(true);
    thread = applyHistoryPage(thread, page(21, 70), { older: true, limit: 50 });
    expect(thread.hasMore).toBe(true);
    thread = applyHistoryPage(thread, page(1, 20), { older: true, limit: 50 });
    expect(thread.hasMore).toBe(false);
    expect(canLoadOlder(thread)).toBe(false);
    expect(thread.messages).toHaveLength(120);
    expect(thread.messages[0].id).toBe('m1');
    expect(thread.messages.at(-1).id).toBe('m120');
  });

  it('knows a short first page is the whole conversation', () => {
    const thread = applyHistoryPage(emptyThread(), page(1, 3), { limit: 50 });
    expect(thread).toMatchObject({ loaded: true, hasMore: false });
  });

  it('stops when a full page brings nothing new (a server that ignores before)', () => {
    let thread = applyHistoryPage(emptyThread(), page(1, 50), { limit: 50 });
    thread = applyHistoryPage(thread, page(1, 50), { older: true, limit: 50 });
    expect(thread.hasMore).toBe(false);
  });

  it('keeps messages that arrived live before the first page', () => {
    let thread = { ...emptyThread(), messages: [] };
    thread = { ...thread, messages: page(121, 121).map((m) => ({ ...m, status: 'sent' })) };
    thread = applyHistoryPage(thread, page(71, 121), { limit: 50 });
    expect(thread.messages).toHaveLength(51);
    expect(thread.messages.at(-1).id).toBe('m121');
  });

  it('does not load older pages while a page is in flight', () => {
    const thread = { ...applyHistoryPage(emptyThread(), page(1, 50), { limit: 50 }), loadingOlder: true };
    expect(canLoadOlder(thread)).toBe(false);
    expect(canLoadOlder(emptyThread())).toBe(false);
  });
});
