// Drives one Nexus Chat instance for bench/instructions/run.sh: two users, `--messages N` direct
// messages (acked and delivered), optionally `--reads` (each delivered message marked read) and
// `--typing` (a typing event per message). Prints a line to stdout at each phase boundary, so
// the caller can zero and dump the instruction counters around the measured phase.
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';

// socket.io-client comes from the JS test suite's modules (tests/js), as run.sh says.
const { io } = createRequire(process.env.CLIENT_MODULES)('socket.io-client');

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => a.startsWith('--') ? [a.slice(2), all[i + 1]?.startsWith('--') || all[i + 1] === undefined ? true : all[i + 1]] : null).filter(Boolean));
const url = args.url;
const total = Number(args.messages ?? 1000);
const window = Number(args.window ?? 8);
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
const proceed = async (phase) => { console.log(phase); await lines.next(); };

async function post(path, body) {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}
async function account(name) {
  await post('/auth/register', { username: name, password: 'instructions-pw' });
  return post('/auth/login', { username: name, password: 'instructions-pw' });
}
function connect(token) {
  return new Promise((resolve, reject) => {
    const s = io(url, { auth: { token }, transports: ['websocket'], reconnection: false });
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}
const ack = (s, event, payload) => new Promise((resolve) => s.emit(event, payload, resolve));

const tag = Math.random().toString(36).slice(2, 8);
const alice = await account(`alice_${tag}`);
const bob = await account(`bob_${tag}`);
const a = await connect(alice.access_token ?? alice.token);
const b = await connect(bob.access_token ?? bob.token);
// Warm-up: the first message of a conversation creates its rows and fills caches.
for (let i = 0; i < 20; i++) await ack(a, 'message:send', { receiverId: bob.user?.id ?? bob.id, content: `warm ${i}` });

let delivered = 0;
let readsAcked = 0;
let done;
const finished = new Promise((r) => { done = r; });
const check = () => { if (delivered === total && (!args.reads || readsAcked === total)) done(); };
b.on('message:new', (m) => {
  if (!m.content.startsWith('m ')) return;
  delivered++;
  if (args.reads) b.emit('conversation:read', { receiverId: m.senderId, upTo: m.id }, () => { readsAcked++; check(); });
  check();
});
await proceed('ready');
const peer = bob.user?.id ?? bob.id;
let next = 0;
async function lane() {
  while (next < total) {
    const i = next++;
    if (args.typing) a.emit('typing', { receiverId: peer, typing: true });
    const r = await ack(a, 'message:send', { receiverId: peer, content: `m ${i} ${'x'.repeat(60)}` });
    if (r?.error) throw new Error(JSON.stringify(r));
  }
}
await Promise.all(Array.from({ length: window }, lane));
await finished;
await proceed('measured');
a.close();
b.close();
process.exit(0);
