// End-to-end: unread badges, read receipts, typing and notifications between two people on two
// instances (Alice on the first origin, Bob on the second; Bob's second tab on the first).
// Needs a server with read state and typing (CONTRACT Part 3); nothing here starts one.
// E2E_UPDATE_DOCS=1 also copies the README's receipts and typing screenshots to ../docs/.
//
//   E2E_BASE_URLS=http://127.0.0.1:3000,http://127.0.0.1:3001 npm run e2e:file -- e2e/read-state.e2e.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  BASE_A,
  BASE_B,
  byTestId,
  cspViolations,
  launch,
  messages,
  messageWithText,
  newContext,
  openDirect,
  watchConsole,
  openRoom,
  publish,
  registerInPage,
  roomRow,
  sendByKeyboard,
  setHidden,
  shot,
  signedInAs,
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
const burst = [1, 2, 3].map((n) => `Unread number ${n} ${suffix}`);
const text = {
  later: `One more for the other tab ${suffix}`,
  typed: 'I am typing this',
  sent: `Typed and sent ${suffix}`,
  group: `Seen in the group? ${suffix}`,
  ping: `Are you there? ${suffix}`,
  muted: `You muted me ${suffix}`,
};

const consoleErrors = [];
let browser;
let alicePage;
let bobPage;
let bobTab2;

const badgeOf = async (page, username) => {
  const badge = byTestId(page, `user-${username}`).locator('[data-testid="unread-badge"]');
  return (await badge.count()) ? badge.innerText() : null;
};
const receiptsOf = (page) => messages(page).evaluateAll((nodes) => nodes.map((node) => node.dataset.receipt ?? null));
const typingLine = async (page) => {
  const line = byTestId(page, 'typing-indicator');
  return (await line.count()) ? line.innerText() : null;
};

describe('read state and typing across two instances', { skip: SKIP }, () => {
  before(async () => {
    browser = await launch();
    ({ page: alicePage } = await newContext(browser, 'alice', { hidable: true, log: consoleErrors }));
    const bobs = await newContext(browser, 'bob', { colorScheme: 'dark', log: consoleErrors });
    bobPage = bobs.page;
    await registerInPage(alicePage, BASE_A, alice);
    await registerInPage(bobPage, BASE_B, bob);
    // Bob's second tab talks to the other instance. Another origin keeps its own session, so he
    // signs in there too; on one origin the tab shares the first tab's session.
    bobTab2 = await bobs.context.newPage();
    watchConsole(bobTab2, 'bob tab 2', consoleErrors);
    if (BASE_A === BASE_B) {
      await bobTab2.goto(BASE_A);
      await signedInAs(bobTab2, bob.username);
    } else {
      await signInInPage(bobTab2, BASE_A, bob);
    }
  });

  after(async () => {
    await browser?.close();
  });

  test('messages to a closed conversation raise a badge and the tab title count', { timeout: 60_000 }, async () => {
    await until('alice to see bob', async () => (await byTestId(alicePage, `user-${bob.username}`).count()) === 1);
    await openDirect(alicePage, bob.username);
    for (const line of burst) await sendByKeyboard(alicePage, line);
    await until('the burst to be sent', async () => (await statusOf(alicePage, burst[2])) === 'sent');
    assert.deepEqual(await receiptsOf(alicePage), ['sent', 'sent', 'sent'], 'one tick each until bob reads');

    for (const [who, page] of [['bob', bobPage], ['bob’s second tab', bobTab2]]) {
      await until(`${who} to show 3 unread`, async () => (await badgeOf(page, alice.username)) === '3');
      await until(`${who}’s title to count 3`, async () => (await page.title()) === '(3) Nexus Chat');
    }
    await shot(bobPage, 'unread-badge.png');
  });

  test('bob opens the chat: a divider marks the new messages, badges clear in both tabs, alice sees ✓✓', { timeout: 60_000 }, async () => {
    await openDirect(bobPage, alice.username);
    const divider = byTestId(bobPage, 'unread-divider');
    await divider.waitFor({ timeout: WAIT });
    const next = await divider.evaluate((node) => node.nextElementSibling?.textContent ?? '');
    assert.ok(next.includes(burst[0]), 'the divider sits above the first unread message');

    await until('bob’s badge to clear', async () => (await badgeOf(bobPage, alice.username)) === null);
    await until('bob’s title to clear', async () => (await bobPage.title()) === 'Nexus Chat');
    // The other tab hears of the read through conversation:read, across instances.
    await until('the other tab’s badge to clear', async () => (await badgeOf(bobTab2, alice.username)) === null);
    await until('the other tab’s title to clear', async () => (await bobTab2.title()) === 'Nexus Chat');

    await until('alice’s ticks to turn ✓✓', async () => (await receiptsOf(alicePage)).every((receipt) => receipt === 'read'));
    await shot(alicePage, 'read-receipts.png');
    await publish('read-receipts.png', 'screenshot-read-receipts.png');
  });

  test('a message into the open conversation is read at once; the other tab counts nothing', { timeout: 60_000 }, async () => {
    await sendByKeyboard(alicePage, text.later);
    await messageWithText(bobPage, text.later).waitFor({ timeout: WAIT });
    await until('alice’s newest tick to turn ✓✓', async () => (await messageWithText(alicePage, text.later).getAttribute('data-receipt')) === 'read');
    await until('the other tab to settle at no unread', async () => (await badgeOf(bobTab2, alice.username)) === null && (await bobTab2.title()) === 'Nexus Chat');
  });

  test('bob types: alice sees it in the header and the sidebar until he clears the box or sends', { timeout: 60_000 }, async () => {
    const input = byTestId(bobPage, 'composer-input');
    await input.click();
    await input.pressSequentially(text.typed, { delay: 20 });
    await until('alice to see bob typing', async () => (await typingLine(alicePage)) === `${bob.username} is typing…`);
    await byTestId(alicePage, `user-${bob.username}`).locator('[data-testid="row-typing"]').waitFor({ timeout: WAIT });
    await shot(alicePage, 'typing.png');
    await publish('typing.png', 'screenshot-typing.png');

    await input.fill('');
    await until('the typing line to go when bob clears the box', async () => (await typingLine(alicePage)) === null);

    await input.pressSequentially(text.sent, { delay: 5 });
    await until('alice to see bob typing again', async () => (await typingLine(alicePage)) !== null);
    await input.press('Enter');
    await messageWithText(alicePage, text.sent).waitFor({ timeout: WAIT });
    await until('the typing line to go when bob sends', async () => (await typingLine(alicePage)) === null);
    assert.equal(await byTestId(alicePage, `user-${bob.username}`).locator('[data-testid="row-typing"]').count(), 0);
  });

  test('in a group, "Seen by" counts the members who read alice’s message', { timeout: 60_000 }, async () => {
    await byTestId(alicePage, 'new-group').click();
    await byTestId(alicePage, 'group-name').fill(`Readers ${suffix}`);
    await byTestId(alicePage, 'people-search').fill(bob.username);
    await byTestId(alicePage, `pick-${bob.username}`).click();
    await byTestId(alicePage, 'create-group').click();
    await byTestId(alicePage, 'new-group-dialog').waitFor({ state: 'detached', timeout: WAIT });
    const roomId = await alicePage.locator(`[data-testid="room-row"][data-room-name="Readers ${suffix}"]`).getAttribute('data-room-id');
    await sendByKeyboard(alicePage, text.group);
    await until('the group message to be sent', async () => (await statusOf(alicePage, text.group)) === 'sent');
    assert.equal(await byTestId(alicePage, 'seen-by').count(), 0, 'nobody has seen it yet');

    await roomRow(bobPage, roomId).locator('[data-testid="unread-badge"]').waitFor({ timeout: WAIT });
    await openRoom(bobPage, roomId, `Readers ${suffix}`);
    const seen = byTestId(alicePage, 'seen-by');
    await seen.waitFor({ timeout: WAIT });
    assert.equal(await seen.getAttribute('data-count'), '1');
    assert.equal(await seen.getAttribute('aria-label'), `Seen by ${bob.username}`);
    await seen.focus();
    await shot(alicePage, 'seen-by.png');
  });

  test('while alice’s tab is hidden a message notifies her; clicking it opens the conversation', { timeout: 60_000 }, async () => {
    await alicePage.context().grantPermissions(['notifications'], { origin: BASE_A });
    await byTestId(alicePage, 'settings-button').click();
    await byTestId(alicePage, 'notifications-toggle').check();
    await until('notifications to be on', () => byTestId(alicePage, 'notifications-toggle').isChecked());
    await alicePage.keyboard.press('Escape');

    // Not while she looks at the page.
    await openDirect(bobPage, alice.username);
    await alicePage.locator('[data-testid="room-row"]').first().click();
    await sendByKeyboard(bobPage, text.ping);
    await messageWithText(bobPage, text.ping).waitFor({ timeout: WAIT });
    await until('alice’s badge for bob', async () => (await badgeOf(alicePage, bob.username)) !== null);
    assert.equal(await alicePage.evaluate(() => window.__notifications.length), 0, 'no notification while the tab is visible');

    await setHidden(alicePage, true);
    await sendByKeyboard(bobPage, text.muted.replace('You muted me', 'Hidden tab'));
    const shown = await until('a notification', async () => {
      const list = await alicePage.evaluate(() => window.__notifications.map((n) => ({ title: n.title, body: n.body })));
      return list.length ? list : null;
    });
    assert.equal(shown[0].title, bob.username);
    assert.match(shown[0].body, /Hidden tab/);

    await alicePage.evaluate(() => window.__notifications.at(-1).onclick());
    await setHidden(alicePage, false);
    await alicePage.locator(`[data-testid="conversation-pane"][data-peer="${bob.username}"]`).waitFor({ timeout: WAIT });
    await until('the badge to clear once she looks', async () => (await badgeOf(alicePage, bob.username)) === null);
  });

  test('a muted conversation raises no notification', { timeout: 60_000 }, async () => {
    await byTestId(alicePage, 'mute-toggle').click();
    assert.equal(await byTestId(alicePage, 'mute-toggle').getAttribute('aria-pressed'), 'true');
    const before = await alicePage.evaluate(() => window.__notifications.length);
    await setHidden(alicePage, true);
    await sendByKeyboard(bobPage, text.muted);
    // The page decides on a notification in the same step that shows the message.
    await until('the muted message to arrive', async () => (await messageWithText(alicePage, text.muted).count()) === 1);
    assert.equal(await alicePage.evaluate(() => window.__notifications.length), before, 'muted: no notification');
    await setHidden(alicePage, false);
    const muted = await alicePage.evaluate(() => {
      const me = JSON.parse(localStorage.getItem('nexus.user'));
      return JSON.parse(localStorage.getItem(`nexus.prefs.${me.id}`)).muted;
    });
    assert.equal(muted.length, 1, 'the mute is kept in localStorage');
  });

  test('no page broke the Content-Security-Policy or logged an error', async () => {
    for (const [who, page] of [['alice', alicePage], ['bob', bobPage], ['bob tab 2', bobTab2]]) {
      assert.deepEqual(await cspViolations(page), [], `${who}'s page ran under the strict CSP`);
    }
    assert.deepEqual(unexpectedErrors(consoleErrors), []);
  });
});
