// End-to-end: two people in two browsers, each on its own server instance, chatting through the
// built client that the servers serve. The servers must already run: E2E_BASE_URLS lists their
// origins (comma-separated); with one origin both users share it. Nothing here starts a server.
//
//   E2E_BASE_URLS=http://127.0.0.1:3000,http://127.0.0.1:3001 npm run e2e
//
// CHROMIUM_PATH picks the browser (default /usr/bin/chromium); E2E_UPDATE_DOCS=1 also copies the
// chat screenshot to ../docs/screenshot-chat.png for the README.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFile, mkdir } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';

const BASES = (process.env.E2E_BASE_URLS ?? '')
  .split(',')
  .map((url) => url.trim().replace(/\/+$/, ''))
  .filter(Boolean);
const BASE_A = BASES[0];
const BASE_B = BASES[1] ?? BASES[0];
const SHOTS = new URL('./screenshots/', import.meta.url);
const DOCS_SHOT = new URL('../../docs/screenshot-chat.png', import.meta.url);
const BULK = 120;
const WAIT = 15_000;

const suffix = randomBytes(4).toString('hex');
const alice = { username: `alice_${suffix}`, password: 'correct horse battery' };
const bob = { username: `bob_${suffix}`, password: 'staple tuna 42' };
const text = {
  hello: `Hello Bob! ${suffix}`,
  reply: 'Hi Alice, good to see you here.',
  multiline: 'Two lines:\nthis is the second one.',
  flaky: `This one fails first ${suffix}`,
  away: `Sent while you were away ${suffix}`,
};
const TOTAL = 5 + BULK;

let browser;
let contextA;
let contextB;
let pageA;
let pageB;
let bulkSocket;
const consoleErrors = [];
/** Bob's socket goes through this proxy, so the test can drop it or fake a failed ack. */
const bobLink = { blocked: false, failSendsContaining: null, routes: [] };

function watchConsole(page, who) {
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`${who}: ${message.text()}`);
  });
  page.on('pageerror', (error) => consoleErrors.push(`${who}: ${error.message}`));
}

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);
const messages = (page) => byTestId(page, 'message');
const messageWithText = (page, content) => messages(page).filter({ hasText: content });

async function until(what, check, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`timed out waiting for ${what} (last value: ${JSON.stringify(last)})`);
}

async function shot(page, name) {
  await page.screenshot({ path: new URL(name, SHOTS).pathname });
}

async function register(page, base, { username, password }) {
  await page.goto(base);
  await byTestId(page, 'register-toggle').click();
  await byTestId(page, 'login-username').fill(username);
  await byTestId(page, 'login-password').fill(password);
  await byTestId(page, 'login-submit').click();
}

async function signedInAs(page, username) {
  await byTestId(page, 'current-user').filter({ hasText: username }).waitFor({ timeout: WAIT });
}

async function presenceOf(page, username) {
  const entry = byTestId(page, `user-${username}`);
  if (!(await entry.count())) return null;
  return entry.getAttribute('data-online');
}

async function openConversation(page, username) {
  await byTestId(page, `user-${username}`).click();
  await page.locator(`[data-testid="conversation-pane"][data-peer="${username}"]`).waitFor({ timeout: WAIT });
}

async function sendByKeyboard(page, content) {
  const input = byTestId(page, 'composer-input');
  await input.click();
  const lines = content.split('\n');
  for (const [i, line] of lines.entries()) {
    if (i > 0) await input.press('Shift+Enter');
    await input.pressSequentially(line, { delay: 2 });
  }
  await input.press('Enter');
}

async function statusOf(page, content) {
  const bubble = messageWithText(page, content);
  if ((await bubble.count()) !== 1) return null;
  return bubble.getAttribute('data-status');
}

async function session(page) {
  return page.evaluate(() => ({
    token: localStorage.getItem('nexus.token'),
    user: JSON.parse(localStorage.getItem('nexus.user')),
  }));
}

function connectSocket(base, token) {
  return new Promise((resolve, reject) => {
    const socket = io(base, { transports: ['websocket'], auth: { token }, reconnection: false });
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

/** The server instance behind a page, from Settings → About (the badge is kept out of the sidebar). */
async function instanceOf(page) {
  await byTestId(page, 'settings-button').click();
  const indicator = byTestId(page, 'settings-dialog').locator('[data-testid="instance-indicator"]');
  const id = await until('the instance to be known', () => indicator.getAttribute('data-instance-id'));
  await page.keyboard.press('Escape');
  await byTestId(page, 'settings-dialog').waitFor({ state: 'detached', timeout: WAIT });
  return id;
}

async function messageIds(page) {
  return messages(page).evaluateAll((nodes) => nodes.map((node) => node.dataset.id));
}

describe('two people chatting across instances', { skip: BASES.length ? false : 'E2E_BASE_URLS is not set' }, () => {
  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    contextA = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    contextB = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
    await contextB.routeWebSocket(/\/socket\.io\//, (ws) => {
      if (bobLink.blocked) {
        ws.close();
        return;
      }
      const server = ws.connectToServer();
      bobLink.routes.push({ ws, server });
      ws.onMessage((frame) => {
        const ack = typeof frame === 'string' && /^42(\d+)\["message:send"/.exec(frame);
        if (ack && bobLink.failSendsContaining && frame.includes(bobLink.failSendsContaining)) {
          const error = { code: 'unavailable', message: 'Storage is unavailable; the message was not stored.' };
          ws.send(`43${ack[1]}${JSON.stringify([{ error }])}`);
          return;
        }
        server.send(frame);
      });
    });
    pageA = await contextA.newPage();
    pageB = await contextB.newPage();
    watchConsole(pageA, 'alice');
    watchConsole(pageB, 'bob');
  });

  after(async () => {
    bulkSocket?.disconnect();
    await browser?.close();
  });

  test('both register on their own instance and see each other come online', { timeout: 60_000 }, async () => {
    await register(pageA, BASE_A, alice);
    await signedInAs(pageA, alice.username);
    await shot(pageA, 'signed-in-empty.png');

    // A taken username is refused inline with the server's message.
    await register(pageB, BASE_B, { username: alice.username, password: 'whatever 123' });
    const error = byTestId(pageB, 'auth-error');
    await error.waitFor({ timeout: WAIT });
    assert.match(await error.innerText(), /already exists/i);
    await pageB.waitForTimeout(400);
    await shot(pageB, 'register-error.png');

    await byTestId(pageB, 'login-username').fill(bob.username);
    await byTestId(pageB, 'login-password').fill(bob.password);
    await byTestId(pageB, 'login-submit').click();
    await signedInAs(pageB, bob.username);

    await until('alice to see bob online', async () => (await presenceOf(pageA, bob.username)) === 'true');
    await until('bob to see alice online', async () => (await presenceOf(pageB, alice.username)) === 'true');

    const instanceA = await instanceOf(pageA);
    const instanceB = await instanceOf(pageB);
    assert.ok(instanceA, 'alice sees which instance she is on');
    if (BASE_A !== BASE_B) assert.notEqual(instanceA, instanceB, 'the two users sit on different instances');
  });

  test('they exchange messages both ways', { timeout: 60_000 }, async () => {
    await openConversation(pageA, bob.username);
    await byTestId(pageA, 'thread-empty').waitFor({ timeout: WAIT });
    await sendByKeyboard(pageA, text.hello);
    await until('alice’s message to be sent', async () => (await statusOf(pageA, text.hello)) === 'sent');

    await openConversation(pageB, alice.username);
    await until('bob to get alice’s message', async () => (await messageWithText(pageB, text.hello).count()) === 1);
    await sendByKeyboard(pageB, text.reply);
    await until('alice to get bob’s reply', async () => (await messageWithText(pageA, text.reply).count()) === 1);

    await sendByKeyboard(pageA, text.multiline);
    await until('bob to get the two-line message', async () => (await messageWithText(pageB, 'this is the second one').count()) === 1);
    const received = await messageWithText(pageB, 'this is the second one').locator('.bubble-text').innerText();
    assert.equal(received, text.multiline, 'Shift+Enter puts a new line into the message');

    assert.deepEqual(
      await messages(pageA).evaluateAll((nodes) => nodes.map((node) => node.dataset.status)),
      ['sent', 'sent', 'sent'],
    );
    await shot(pageA, 'chat.png');
    await shot(pageB, 'chat-dark.png');
    if (process.env.E2E_UPDATE_DOCS) {
      await mkdir(new URL('.', DOCS_SHOT), { recursive: true });
      await copyFile(new URL('chat.png', SHOTS), DOCS_SHOT);
    }
  });

  test('a failed send shows an error and its retry delivers it exactly once', { timeout: 60_000 }, async () => {
    bobLink.failSendsContaining = text.flaky;
    await sendByKeyboard(pageB, text.flaky);
    await until('bob’s message to fail', async () => (await statusOf(pageB, text.flaky)) === 'failed');
    const clientMsgId = await messageWithText(pageB, text.flaky).getAttribute('data-client-msg-id');
    await shot(pageB, 'failed-send.png');

    bobLink.failSendsContaining = null;
    await messageWithText(pageB, text.flaky).locator('[data-testid="retry-button"]').click();
    await until('the retry to be sent', async () => (await statusOf(pageB, text.flaky)) === 'sent');
    assert.equal(
      await messageWithText(pageB, text.flaky).getAttribute('data-client-msg-id'),
      clientMsgId,
      'the retry reuses the clientMsgId',
    );
    await until('alice to get it once', async () => (await messageWithText(pageA, text.flaky).count()) === 1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await messageWithText(pageA, text.flaky).count(), 1);
    assert.equal(await messageWithText(pageB, text.flaky).count(), 1);
  });

  test('after a dropped connection bob catches up on what he missed', { timeout: 60_000 }, async () => {
    const { token, user } = await session(pageA);
    const peer = await session(pageB);
    bulkSocket = await connectSocket(BASE_A, token);
    assert.equal(user.username, alice.username);

    bobLink.blocked = true;
    for (const { ws, server } of bobLink.routes.splice(0)) {
      await server.close().catch(() => {});
      await ws.close().catch(() => {});
    }
    await byTestId(pageB, 'reconnecting-banner').waitFor({ timeout: WAIT });
    await shot(pageB, 'reconnecting.png');

    const ack = await bulkSocket
      .timeout(WAIT)
      .emitWithAck('message:send', { receiverId: peer.user.id, content: text.away, clientMsgId: randomUUID() });
    assert.ok(ack?.id && !ack.error, `the server stored the message: ${JSON.stringify(ack)}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await messageWithText(pageB, text.away).count(), 0, 'bob is really offline');

    bobLink.blocked = false;
    await byTestId(pageB, 'reconnecting-banner').waitFor({ state: 'detached', timeout: 30_000 });
    await until('bob to sync the missed message', async () => (await messageWithText(pageB, text.away).count()) === 1);
    const ids = await messageIds(pageB);
    assert.equal(new Set(ids).size, ids.length, 'no message shows twice after the sync');
  });

  test('alice sends 120 more; bob sees them live and both keep every message once', { timeout: 120_000 }, async () => {
    const peer = await session(pageB);
    for (let n = 1; n <= BULK; n += 1) {
      const content = `bulk ${String(n).padStart(3, '0')} ${suffix}`;
      const ack = await bulkSocket
        .timeout(WAIT)
        .emitWithAck('message:send', { receiverId: peer.user.id, content, clientMsgId: randomUUID() });
      assert.ok(ack?.id && !ack.error, `message ${n} was stored: ${JSON.stringify(ack)}`);
    }
    const last = `bulk ${String(BULK).padStart(3, '0')} ${suffix}`;
    await until('bob to get the last bulk message', async () => (await messageWithText(pageB, last).count()) === 1);
    await until('bob to hold every message once', async () => (await messages(pageB).count()) === TOTAL);
    const ids = await messageIds(pageB);
    assert.equal(new Set(ids).size, TOTAL);
  });

  test('alice reloads and scrolls back through the whole history', { timeout: 120_000 }, async () => {
    await pageA.reload();
    await signedInAs(pageA, alice.username);
    if (!(await byTestId(pageA, 'conversation-pane').count())) await openConversation(pageA, bob.username);
    const last = `bulk ${String(BULK).padStart(3, '0')} ${suffix}`;
    await messageWithText(pageA, last).waitFor({ timeout: WAIT });
    const firstPage = await messages(pageA).count();
    assert.ok(firstPage < TOTAL, `the first page holds only the latest messages (${firstPage})`);

    const list = byTestId(pageA, 'message-list');
    const first = messageWithText(pageA, text.hello);
    await until(
      'the first message after scrolling up',
      async () => {
        if (await first.count()) return true;
        await list.evaluate((el) => {
          el.scrollTop = 0;
        });
        return false;
      },
      60_000,
    );
    await byTestId(pageA, 'history-start').waitFor({ timeout: WAIT });
    await list.evaluate((el) => {
      el.scrollTop = 0;
    });
    const inView = await first.evaluate((node) => {
      const box = node.getBoundingClientRect();
      const frame = node.closest('[data-testid="message-list"]').getBoundingClientRect();
      return box.bottom > frame.top && box.top < frame.bottom && box.height > 0;
    });
    assert.ok(inView, 'the first message is visible at the top of the list');
    assert.equal(await messages(pageA).count(), TOTAL, 'every message was paged in');
    const ids = await messageIds(pageA);
    assert.equal(new Set(ids).size, TOTAL, 'no duplicates across pages');
    await shot(pageA, 'history-start.png');
  });

  test('on a phone-sized screen the sidebar gives way to the conversation', { timeout: 30_000 }, async () => {
    await pageB.setViewportSize({ width: 360, height: 740 });
    await byTestId(pageB, 'conversation-pane').waitFor({ timeout: WAIT });
    assert.equal(await pageB.locator('.sidebar').isVisible(), false);
    await shot(pageB, 'mobile-chat.png');
    await pageB.getByRole('button', { name: 'Back to conversations' }).click();
    await byTestId(pageB, `user-${alice.username}`).waitFor({ timeout: WAIT });
    await shot(pageB, 'mobile-list.png');
    await pageB.setViewportSize({ width: 1280, height: 800 });
  });

  test('bob sees alice go offline when her page closes', { timeout: 60_000 }, async () => {
    bulkSocket.disconnect();
    bulkSocket = null;
    await contextA.close();
    await until('bob to see alice offline', async () => (await presenceOf(pageB, alice.username)) === 'false');
    await shot(pageB, 'peer-offline.png');
  });

  test('a token the server refuses signs the user out', { timeout: 30_000 }, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    watchConsole(page, 'expired');
    await page.goto(BASE_A);
    await page.evaluate(() => {
      localStorage.setItem('nexus.token', 'not-a-valid-token');
      localStorage.setItem('nexus.user', JSON.stringify({ id: '00000000-0000-4000-8000-000000000000', username: 'ghost' }));
    });
    await page.reload();
    await byTestId(page, 'login-form').waitFor({ timeout: WAIT });
    assert.match(await page.locator('.auth-notice').innerText(), /expired/i);
    assert.equal(await page.evaluate(() => localStorage.getItem('nexus.token')), null);
    await context.close();
  });

  test('no page logged an error', () => {
    // The browser itself logs the deliberate 409 and 401 responses, and may log the WebSocket the
    // test dropped on purpose.
    const expected = [/^bob: .*status of 409 \(Conflict\)/, /^expired: .*status of 401 \(Unauthorized\)/, /^bob: .*WebSocket/i];
    const unexpected = consoleErrors.filter((line) => !expected.some((pattern) => pattern.test(line)));
    assert.deepEqual(unexpected, []);
  });
});
