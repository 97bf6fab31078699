// End-to-end: a group of three people on two instances, through the built client the servers serve.
// Alice (owner) and Cy sit on the first origin, Bob and later Dee on the second. Alice creates the
// group, they chat, Alice adds Dee (offline until then, found through the user directory) and
// removes Cy, and Bob leaves. Needs a server with rooms (CONTRACT Part 3); nothing here starts one.
// E2E_UPDATE_DOCS=1 also copies the README's group screenshots to ../docs/.
//
//   E2E_BASE_URLS=http://127.0.0.1:3000,http://127.0.0.1:3001 npm run e2e:file -- e2e/rooms.e2e.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  BASE_A,
  BASE_B,
  byTestId,
  cspViolations,
  instanceOf,
  launch,
  messages,
  messageWithText,
  newContext,
  openRoom,
  publish,
  registerInPage,
  registerOverRest,
  roomRow,
  sendByKeyboard,
  shot,
  signInInPage,
  SKIP,
  statusOf,
  unexpectedErrors,
  until,
  WAIT,
} from './helpers.mjs';

const suffix = randomBytes(4).toString('hex');
const alice = { username: `alice_${suffix}`, password: 'correct horse battery' };
const bob = { username: `bob_${suffix}`, password: 'staple tuna 42' };
const cy = { username: `cy_${suffix}`, password: 'cy cy cy 123' };
const dee = { username: `dee_${suffix}`, password: 'dee dee dee 123' };
const group = `Weekend climb ${suffix}`;
const renamed = `Sunday climb ${suffix}`;
const text = {
  hello: `Who is in for Saturday? ${suffix}`,
  bob: 'Count me in, I will bring the rope.',
  cy: 'Me too! Meet at nine?',
  flaky: `Bob's flaky one ${suffix}`,
  away: `Sent while Bob was away ${suffix}`,
  welcome: `Welcome Dee! ${suffix}`,
  afterCy: `Cy is out of the group now ${suffix}`,
  afterBob: `Just the two of us ${suffix}`,
};

const consoleErrors = [];
let browser;
const pages = {};
let roomId;
/** Bob's socket goes through this proxy, so the test can drop it or fake a failed ack. */
const bobLink = { blocked: false, failSendsContaining: null, routes: [] };

const header = (page) => byTestId(page, 'room-members-count');

async function openDetails(page) {
  await byTestId(page, 'room-details').click();
  await byTestId(page, 'room-dialog').waitFor({ timeout: WAIT });
}

async function closeDialog(page, id) {
  await page.keyboard.press('Escape');
  await byTestId(page, id).waitFor({ state: 'detached', timeout: WAIT });
}

async function pick(page, username) {
  await byTestId(page, 'people-search').last().fill(username);
  await byTestId(page, `pick-${username}`).click();
}

describe('a group across two instances', { skip: SKIP }, () => {
  before(async () => {
    browser = await launch();
    for (const [who, options] of [
      ['alice', {}],
      ['bob', { colorScheme: 'dark' }],
      ['cy', {}],
    ]) {
      const { context, page } = await newContext(browser, who, { ...options, log: consoleErrors });
      pages[who] = { context, page };
    }
    await pages.bob.context.routeWebSocket(/\/socket\.io\//, (ws) => {
      if (bobLink.blocked) {
        ws.close();
        return;
      }
      const server = ws.connectToServer();
      bobLink.routes.push({ ws, server });
      ws.onMessage((frame) => {
        const ack = typeof frame === 'string' && /^42(\d+)\["room:send"/.exec(frame);
        if (ack && bobLink.failSendsContaining && frame.includes(bobLink.failSendsContaining)) {
          const error = { code: 'unavailable', message: 'Storage is unavailable; the message was not stored.' };
          ws.send(`43${ack[1]}${JSON.stringify([{ error }])}`);
          return;
        }
        server.send(frame);
      });
    });
  });

  after(async () => {
    await browser?.close();
  });

  test('three people sign in on two instances; an offline fourth is found through the directory', { timeout: 60_000 }, async () => {
    await registerInPage(pages.alice.page, BASE_A, alice);
    await registerInPage(pages.bob.page, BASE_B, bob);
    await registerInPage(pages.cy.page, BASE_A, cy);
    await registerOverRest(BASE_B, dee);
    if (BASE_A !== BASE_B) {
      assert.notEqual(await instanceOf(pages.alice.page), await instanceOf(pages.bob.page), 'alice and bob sit on different instances');
    }

    // Dee never signed in, so only the user directory knows him.
    const { page } = pages.alice;
    await byTestId(page, 'user-search').fill(dee.username);
    const row = byTestId(page, `user-${dee.username}`);
    await row.waitFor({ timeout: WAIT });
    assert.equal(await row.getAttribute('data-online'), 'false');
    await byTestId(page, 'user-search').fill('');
  });

  test('alice creates the group with bob and cy; it appears for all three', { timeout: 60_000 }, async () => {
    const { page } = pages.alice;
    await byTestId(page, 'new-group').click();
    const dialog = byTestId(page, 'new-group-dialog');
    await dialog.waitFor({ timeout: WAIT });
    await byTestId(page, 'group-name').fill(group);
    await pick(page, bob.username);
    await pick(page, cy.username);
    assert.match(await byTestId(page, 'create-group').innerText(), /\(3\)/, 'the button counts alice too');
    await shot(page, 'new-group-dialog.png');
    await publish('new-group-dialog.png', 'screenshot-new-group.png');
    await byTestId(page, 'create-group').click();
    await dialog.waitFor({ state: 'detached', timeout: WAIT });

    const pane = page.locator(`[data-testid="conversation-pane"][data-room="${group}"]`);
    await pane.waitFor({ timeout: WAIT });
    roomId = await page.locator(`[data-testid="room-row"][data-room-name="${group}"]`).getAttribute('data-room-id');
    assert.ok(roomId, 'the group has a sidebar row');
    assert.equal(await header(page).innerText(), '3 members');
    await byTestId(page, 'thread-empty').waitFor({ timeout: WAIT });

    for (const who of ['bob', 'cy']) {
      const row = roomRow(pages[who].page, roomId);
      await row.waitFor({ timeout: WAIT });
      assert.equal(await row.getAttribute('data-members'), '3', `${who} sees three members`);
    }
  });

  test('they chat: every message reaches everyone once, with its sender’s name', { timeout: 60_000 }, async () => {
    await sendByKeyboard(pages.alice.page, text.hello);
    await until('alice’s message to be sent', async () => (await statusOf(pages.alice.page, text.hello)) === 'sent');

    await openRoom(pages.bob.page, roomId, group);
    await messageWithText(pages.bob.page, text.hello).waitFor({ timeout: WAIT });
    assert.equal(await messageWithText(pages.bob.page, text.hello).getAttribute('data-sender'), alice.username);
    await sendByKeyboard(pages.bob.page, text.bob);

    await openRoom(pages.cy.page, roomId, group);
    await messageWithText(pages.cy.page, text.bob).waitFor({ timeout: WAIT });
    await sendByKeyboard(pages.cy.page, text.cy);

    for (const who of ['alice', 'bob', 'cy']) {
      const { page } = pages[who];
      await until(`${who} to hold all three messages`, async () => (await messages(page).count()) === 3);
      const senders = await messages(page).evaluateAll((nodes) => nodes.map((node) => [node.dataset.sender, node.dataset.status]));
      assert.deepEqual(
        senders.map(([sender]) => sender),
        [alice.username, bob.username, cy.username],
        `${who} sees the messages in order with their senders`,
      );
      assert.ok(senders.every(([, status]) => status === 'sent'));
    }
    const names = await byTestId(pages.alice.page, 'sender-name').allInnerTexts();
    assert.deepEqual(names, [bob.username, cy.username], 'names show above other people’s messages only');
    await shot(pages.alice.page, 'group-chat.png');
    await publish('group-chat.png', 'screenshot-group.png');
    await shot(pages.bob.page, 'group-chat-dark.png');
  });

  test('a failed group send shows an error and its retry delivers it once', { timeout: 60_000 }, async () => {
    const { page } = pages.bob;
    bobLink.failSendsContaining = text.flaky;
    await sendByKeyboard(page, text.flaky);
    await until('bob’s message to fail', async () => (await statusOf(page, text.flaky)) === 'failed');
    const clientMsgId = await messageWithText(page, text.flaky).getAttribute('data-client-msg-id');
    bobLink.failSendsContaining = null;
    await messageWithText(page, text.flaky).locator('[data-testid="retry-button"]').click();
    await until('the retry to be sent', async () => (await statusOf(page, text.flaky)) === 'sent');
    assert.equal(await messageWithText(page, text.flaky).getAttribute('data-client-msg-id'), clientMsgId);
    for (const who of ['alice', 'cy']) {
      await until(`${who} to get it once`, async () => (await messageWithText(pages[who].page, text.flaky).count()) === 1);
    }
  });

  test('after a dropped connection bob catches up on the group', { timeout: 60_000 }, async () => {
    const { page } = pages.bob;
    bobLink.blocked = true;
    for (const { ws, server } of bobLink.routes.splice(0)) {
      await server.close().catch(() => {});
      await ws.close().catch(() => {});
    }
    await byTestId(page, 'reconnecting-banner').waitFor({ timeout: WAIT });
    await sendByKeyboard(pages.alice.page, text.away);
    await until('alice’s message to be sent', async () => (await statusOf(pages.alice.page, text.away)) === 'sent');
    assert.equal(await messageWithText(page, text.away).count(), 0, 'bob is really offline');
    bobLink.blocked = false;
    await byTestId(page, 'reconnecting-banner').waitFor({ state: 'detached', timeout: 30_000 });
    await until('bob to sync the missed message', async () => (await messageWithText(page, text.away).count()) === 1);
    const ids = await messages(page).evaluateAll((nodes) => nodes.map((node) => node.dataset.id));
    assert.equal(new Set(ids).size, ids.length, 'no message shows twice after the sync');
  });

  test('the owner adds dee, who then sees the whole history; he gets no owner controls', { timeout: 60_000 }, async () => {
    const { page } = pages.alice;
    await openDetails(page);
    await byTestId(page, 'add-people').click();
    await pick(page, dee.username);
    await byTestId(page, 'add-selected').click();
    await byTestId(page, `member-${dee.username}`).waitFor({ timeout: WAIT });
    await shot(page, 'group-members.png');
    await closeDialog(page, 'room-dialog');
    await until('alice’s header to count four', async () => (await header(page).innerText()) === '4 members');
    await until('bob’s header to count four', async () => (await header(pages.bob.page).innerText()) === '4 members');
    await sendByKeyboard(page, text.welcome);

    // Dee signs in for the first time, on a phone, on the other instance.
    const { context, page: deePage } = await newContext(browser, 'dee', { viewport: { width: 360, height: 740 }, log: consoleErrors });
    pages.dee = { context, page: deePage };
    await signInInPage(deePage, BASE_B, dee);
    await roomRow(deePage, roomId).waitFor({ timeout: WAIT });
    await shot(deePage, 'mobile-list-groups.png');
    await openRoom(deePage, roomId, group);
    await messageWithText(deePage, text.welcome).waitFor({ timeout: WAIT });
    await messageWithText(deePage, text.hello).waitFor({ timeout: WAIT });
    assert.equal(await deePage.locator('.sidebar').isVisible(), false, 'on 360 px the conversation takes the screen');
    await shot(deePage, 'mobile-group.png');
    await publish('mobile-group.png', 'screenshot-mobile-group.png');

    await openDetails(deePage);
    await byTestId(deePage, 'leave-group').waitFor({ timeout: WAIT });
    assert.equal(await deePage.locator('[data-testid^="remove-"]').count(), 0, 'a member cannot remove anyone');
    assert.equal(await byTestId(deePage, 'add-people').count(), 0, 'a member cannot add anyone');
    assert.equal(await byTestId(deePage, 'rename-group').count(), 0, 'a member cannot rename');
    await shot(deePage, 'mobile-group-details.png');
    await closeDialog(deePage, 'room-dialog');
  });

  test('the owner removes cy: she is told, loses the group and hears nothing more of it', { timeout: 60_000 }, async () => {
    const { page } = pages.alice;
    await openDetails(page);
    await byTestId(page, `remove-${cy.username}`).click();
    await byTestId(page, `member-${cy.username}`).waitFor({ state: 'detached', timeout: WAIT });
    await closeDialog(page, 'room-dialog');

    const cyPage = pages.cy.page;
    await byTestId(cyPage, 'notice').filter({ hasText: group }).waitFor({ timeout: WAIT });
    await roomRow(cyPage, roomId).waitFor({ state: 'detached', timeout: WAIT });
    assert.equal(await byTestId(cyPage, 'conversation-pane').count(), 0, 'the group closed on her screen');
    await shot(cyPage, 'removed-from-group.png');

    await sendByKeyboard(page, text.afterCy);
    await messageWithText(pages.bob.page, text.afterCy).waitFor({ timeout: WAIT });
    await messageWithText(pages.dee.page, text.afterCy).waitFor({ timeout: WAIT });
    assert.equal(await roomRow(cyPage, roomId).count(), 0, 'the message did not bring the group back for cy');
    assert.equal(await header(pages.bob.page).innerText(), '3 members');
  });

  test('bob leaves the group; the others see it shrink', { timeout: 60_000 }, async () => {
    const { page } = pages.bob;
    await openDetails(page);
    await byTestId(page, 'leave-group').click();
    await byTestId(page, 'leave-confirm').click();
    await roomRow(page, roomId).waitFor({ state: 'detached', timeout: WAIT });
    assert.equal(await byTestId(page, 'notice').count(), 0, 'leaving is not announced as a removal');

    await until('alice’s header to count two', async () => (await header(pages.alice.page).innerText()) === '2 members');
    await sendByKeyboard(pages.alice.page, text.afterBob);
    await messageWithText(pages.dee.page, text.afterBob).waitFor({ timeout: WAIT });
    assert.equal(await roomRow(page, roomId).count(), 0);
  });

  test('the owner renames the group and the rename reaches the other member', { timeout: 60_000 }, async () => {
    const { page } = pages.alice;
    await openDetails(page);
    await byTestId(page, 'rename-group').click();
    await byTestId(page, 'rename-input').fill(renamed);
    await byTestId(page, 'rename-save').click();
    await byTestId(page, 'rename-group').waitFor({ timeout: WAIT });
    await closeDialog(page, 'room-dialog');
    await until('dee to see the new name', async () => (await byTestId(pages.dee.page, 'chat-title').innerText()) === renamed);
  });

  test('no page broke the Content-Security-Policy or logged an error', async () => {
    for (const [who, { page }] of Object.entries(pages)) {
      assert.deepEqual(await cspViolations(page), [], `${who}'s page ran under the strict CSP`);
    }
    assert.deepEqual(unexpectedErrors(consoleErrors, [/^bob: .*WebSocket/i]), []);
  });
});
