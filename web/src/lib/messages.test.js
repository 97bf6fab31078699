import { describe, expect, it } from 'vitest';
import { addPending, applyAck, findOutgoing, markFailed, markRetrying, mergeMessages, sortMessages } from './messages.js';

const ME = 'me';
const PEER = 'peer';
let seq = 0;
function msg(id, content, { from = PEER, at } = {}) {
  seq += 1;
  return {
    id,
    content,
    senderId: from,
    receiverId: from === ME ? PEER : ME,
    createdAt: at ?? new Date(Date.UTC(2026, 10, 29, 5, 0, seq)).toISOString(),
  };
}
const ids = (list) => list.map((entry) => entry.id ?? `(${entry.clientMsgId})`);

describe('mergeMessages', () => {
  it('dedupes messages by id', () => {
    const a = msg('a', 'hi');
    const list = mergeMessages([], [a, a]);
    expect(mergeMessages(list, [a])).toHaveLength(1);
  });

  it('orders by creation time whatever the arrival order', () => {
    const a = msg('a', '1');
    const b = msg('b', '2');
    const c = msg('c', '3');
    expect(ids(mergeMessages(mergeMessages([], [c]), [a, b]))).toEqual(['a', 'b', 'c']);
  });

  it('keeps server order for equal time stamps, an older page going first', () => {
    const at = '2026-11-29T05:00:00.000Z';
    const live = mergeMessages([], [msg('x', 'x', { at }), msg('y', 'y', { at })]);
    expect(ids(mergeMessages(live, [msg('w', 'w', { at })], { older: true }))).toEqual(['w', 'x', 'y']);
    expect(ids(mergeMessages(live, [msg('z', 'z', { at })]))).toEqual(['x', 'y', 'z']);
  });

  it('returns the same list when nothing comes in', () => {
    const list = mergeMessages([], [msg('a', 'a')]);
    expect(mergeMessages(list, [])).toBe(list);
  });

  it('flags only live messages for the entry animation', () => {
    const [entry] = mergeMessages([], [msg('a', 'a')], { live: true });
    expect(entry.live).toBe(true);
    expect(mergeMessages([], [msg('b', 'b')])[0].live).toBe(false);
  });

  it('keeps pending sends below every stored message', () => {
    let list = addPending([], { clientMsgId: 'c1', content: 'mine', senderId: ME, receiverId: PEER, createdAt: '2030-01-01T00:00:00.000Z' });
    list = mergeMessages(list, [msg('a', 'theirs')]);
    expect(ids(list)).toEqual(['a', '(c1)']);
  });
});

describe('a send and its ack', () => {
  const pending = (clientMsgId, content = 'hello') =>
    ({ clientMsgId, content, senderId: ME, receiverId: PEER, createdAt: '2026-11-29T05:00:00.000Z' });

  it('shows pending, then sent with the stored id', () => {
    let list = addPending([], pending('c1'));
    expect(list[0].status).toBe('pending');
    list = applyAck(list, 'c1', msg('m1', 'hello', { from: ME }));
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ id: 'm1', status: 'sent', clientMsgId: 'c1' });
  });

  it('merges an ack that comes after its message:new into one message', () => {
    const stored = msg('m1', 'hello', { from: ME });
    let list = addPending([], pending('c1'));
    list = mergeMessages(list, [stored], { myId: ME, live: true });
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ id: 'm1', status: 'sent', clientMsgId: 'c1' });
    list = applyAck(list, 'c1', stored);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ id: 'm1', clientMsgId: 'c1', status: 'sent' });
  });

  it('merges a message:new that comes after its ack into one message', () => {
    const stored = msg('m1', 'hello', { from: ME });
    let list = applyAck(addPending([], pending('c1')), 'c1', stored);
    list = mergeMessages(list, [stored], { myId: ME, live: true });
    expect(list).toHaveLength(1);
  });

  it('sorts out two identical texts whose message:new events overtook their acks in the other order', () => {
    const first = msg('m1', 'same', { from: ME });
    const second = msg('m2', 'same', { from: ME });
    let list = addPending(addPending([], pending('c1', 'same')), pending('c2', 'same'));
    list = mergeMessages(list, [second], { myId: ME });
    list = mergeMessages(list, [first], { myId: ME });
    list = applyAck(list, 'c1', first);
    list = applyAck(list, 'c2', second);
    expect(list).toHaveLength(2);
    expect(list.map((e) => [e.id, e.clientMsgId])).toEqual([['m1', 'c1'], ['m2', 'c2']]);
  });

  it('keeps a message from another tab that a send adopted by mistake', () => {
    const otherTab = msg('m0', 'hello', { from: ME });
    const ours = msg('m1', 'hello', { from: ME });
    let list = addPending([], pending('c1'));
    list = mergeMessages(list, [otherTab], { myId: ME });
    list = applyAck(list, 'c1', ours);
    expect(ids(list)).toEqual(['m0', 'm1']);
  });

  it('replaces a plain copy of the stored message when the ack arrives', () => {
    const stored = msg('m1', 'hello', { from: ME });
    let list = mergeMessages([], [stored]);
    list = addPending(list, pending('c1', 'different text'));
    list = applyAck(list, 'c1', stored);
    expect(list).toHaveLength(1);
    expect(list[0].clientMsgId).toBe('c1');
  });

  it('shows a failed ack with its error and retries with the same clientMsgId', () => {
    let list = addPending([], pending('c1'));
    list = markFailed(list, 'c1', { code: 'unavailable', message: 'Storage is down' });
    expect(list[0]).toMatchObject({ status: 'failed', error: { code: 'unavailable' } });
    list = markRetrying(list, 'c1');
    expect(list[0]).toMatchObject({ status: 'pending', clientMsgId: 'c1' });
    expect(findOutgoing(list, 'c1')).toMatchObject({ content: 'hello', receiverId: PEER });
    list = applyAck(list, 'c1', msg('m1', 'hello', { from: ME }));
    expect(list).toHaveLength(1);
    expect(list[0].status).toBe('sent');
  });

  it('never duplicates when a retry returns the originally stored message', () => {
    const stored = msg('m1', 'hello', { from: ME });
    let list = addPending([], pending('c1'));
    list = markFailed(list, 'c1', { code: 'timeout', message: 'No answer' });
    list = mergeMessages(list, [stored]); // a sync without claiming
    list = applyAck(markRetrying(list, 'c1'), 'c1', stored);
    expect(list).toHaveLength(1);
  });

  it('lets a synced message settle a send that timed out', () => {
    const stored = msg('m1', 'hello', { from: ME });
    let list = markFailed(addPending([], pending('c1')), 'c1', { code: 'timeout', message: 'No answer' });
    list = mergeMessages(list, [stored], { myId: ME });
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ status: 'sent', id: 'm1', error: undefined });
  });

  it('does not let a message settle a send the server refused', () => {
    let list = markFailed(addPending([], pending('c1')), 'c1', { code: 'rate_limited', message: 'Slow down' });
    list = mergeMessages(list, [msg('m1', 'hello', { from: ME })], { myId: ME });
    expect(list.map((e) => e.status)).toEqual(['sent', 'failed']);
  });

  it('gives back the adopted message when the ack fails', () => {
    let list = addPending([], pending('c1'));
    list = mergeMessages(list, [msg('m0', 'hello', { from: ME })], { myId: ME });
    list = markFailed(list, 'c1', { code: 'internal', message: 'Oops' });
    expect(list.map((e) => [e.id, e.status])).toEqual([['m0', 'sent'], [undefined, 'failed']]);
  });

  it('ignores a second pending with the same clientMsgId', () => {
    const list = addPending([], pending('c1'));
    expect(addPending(list, pending('c1'))).toBe(list);
  });
});

describe('sortMessages', () => {
  it('is stable for equal times', () => {
    const at = '2026-11-29T05:00:00.000Z';
    const list = [msg('b', 'b', { at }), msg('a', 'a', { at })];
    expect(ids(sortMessages(list))).toEqual(['b', 'a']);
  });
});
