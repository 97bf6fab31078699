// Shared by the browser e2e suites: the servers under test (E2E_BASE_URLS), Debian's Chromium, the
// strict Content-Security-Policy the server sends in production, and small page helpers.
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { chromium } from 'playwright-core';

/** The origins under test: one = one node, two = two instances of one cluster. */
export const BASES = (process.env.E2E_BASE_URLS ?? '')
  .split(',')
  .map((url) => url.trim().replace(/\/+$/, ''))
  .filter(Boolean);
export const BASE_A = BASES[0];
export const BASE_B = BASES[1] ?? BASES[0];
export const SKIP = BASES.length ? false : 'E2E_BASE_URLS is not set';
export const WAIT = 15_000;
export const SHOTS = new URL('./screenshots/', import.meta.url);

/** The policy the server sends with index.html (issue 16); every page of these suites loads under it. */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; " +
  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export async function launch() {
  await mkdir(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      // A document fulfilled by the test (to add the CSP header) loses its loopback address
      // space, and Local Network Access would then block its WebSocket to 127.0.0.1.
      '--disable-features=LocalNetworkAccessChecks',
    ],
  });
}

/**
 * A browser context whose documents carry the strict CSP (added here until every server under test
 * sends it itself), recording violations and console errors. `hidable: true` lets the test make
 * the page report itself hidden and unfocused, as a background tab does.
 */
export async function newContext(browser, who, { viewport = { width: 1280, height: 800 }, colorScheme = 'light', hidable = false, log } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  await context.route('**/*', async (route) => {
    const request = route.request();
    if (request.resourceType() !== 'document') return route.continue();
    const response = await route.fetch();
    return route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': CSP } });
  });
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  if (hidable) {
    await context.addInitScript(() => {
      const hasFocus = Document.prototype.hasFocus;
      Object.defineProperty(Document.prototype, 'visibilityState', {
        configurable: true,
        get: () => (window.__e2eHidden ? 'hidden' : 'visible'),
      });
      Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => Boolean(window.__e2eHidden) });
      Document.prototype.hasFocus = function () {
        return window.__e2eHidden ? false : hasFocus.call(this);
      };
      // Headless Chromium shows no desktop notifications: record each one the page creates.
      window.__notifications = [];
      const Real = window.Notification;
      if (Real) {
        window.Notification = class extends Real {
          constructor(title, options) {
            super(title, options);
            window.__notifications.push(this);
          }
        };
      }
    });
  }
  const page = await context.newPage();
  watchConsole(page, who, log);
  return { context, page };
}

export function watchConsole(page, who, log) {
  if (!log) return;
  page.on('console', (message) => {
    if (message.type() === 'error') log.push(`${who}: ${message.text()}`);
  });
  page.on('pageerror', (error) => log.push(`${who}: ${error.message}`));
}

/** Makes a page report itself hidden and unfocused (a background tab), or visible again. */
export async function setHidden(page, hidden) {
  await page.evaluate((value) => {
    window.__e2eHidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
    window.dispatchEvent(new Event(value ? 'blur' : 'focus'));
  }, hidden);
}

export async function cspViolations(page) {
  return page.evaluate(() => window.__cspViolations ?? []);
}

export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);
export const messages = (page) => byTestId(page, 'message');
export const messageWithText = (page, content) => messages(page).filter({ hasText: content });
export const roomRow = (page, roomId) => page.locator(`[data-testid="room-row"][data-room-id="${roomId}"]`);

export async function until(what, check, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`timed out waiting for ${what} (last value: ${JSON.stringify(last)})`);
}

export async function shot(page, name) {
  await page.screenshot({ path: new URL(name, SHOTS).pathname });
}

/** With E2E_UPDATE_DOCS=1, copies a screenshot to ../docs/ for the project README. */
export async function publish(name, docsName) {
  if (!process.env.E2E_UPDATE_DOCS) return;
  const docs = new URL('../../docs/', import.meta.url);
  await mkdir(docs, { recursive: true });
  await copyFile(new URL(name, SHOTS), new URL(docsName, docs));
}

async function post(base, path, body) {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `${path} answered ${response.status}`);
  return response.json();
}

/** Registers a user over REST (nobody signs in: the user stays offline). */
export function registerOverRest(base, { username, password }) {
  return post(base, '/auth/register', { username, password });
}

/** Registers through the page's form and waits until the chat shows. */
export async function registerInPage(page, base, { username, password }) {
  await page.goto(base);
  await byTestId(page, 'register-toggle').click();
  await byTestId(page, 'login-username').fill(username);
  await byTestId(page, 'login-password').fill(password);
  await byTestId(page, 'login-submit').click();
  await signedInAs(page, username);
}

/** Signs an existing user in through the page's form. */
export async function signInInPage(page, base, { username, password }) {
  await page.goto(base);
  await byTestId(page, 'login-username').fill(username);
  await byTestId(page, 'login-password').fill(password);
  await byTestId(page, 'login-submit').click();
  await signedInAs(page, username);
}

export async function signedInAs(page, username) {
  await byTestId(page, 'current-user').filter({ hasText: username }).waitFor({ timeout: WAIT });
}

export async function sendByKeyboard(page, content) {
  const input = byTestId(page, 'composer-input');
  await input.click();
  await input.pressSequentially(content, { delay: 2 });
  await input.press('Enter');
}

export async function statusOf(page, content) {
  const bubble = messageWithText(page, content);
  if ((await bubble.count()) !== 1) return null;
  return bubble.getAttribute('data-status');
}

/** The server instance behind a page, from Settings → About. */
export async function instanceOf(page) {
  await byTestId(page, 'settings-button').click();
  const indicator = byTestId(page, 'settings-dialog').locator('[data-testid="instance-indicator"]');
  const id = await until('the instance to be known', () => indicator.getAttribute('data-instance-id'));
  await page.keyboard.press('Escape');
  await byTestId(page, 'settings-dialog').waitFor({ state: 'detached', timeout: WAIT });
  return id;
}

/** Opens a direct chat from the sidebar row of `username`. */
export async function openDirect(page, username) {
  await byTestId(page, `user-${username}`).click();
  await page.locator(`[data-testid="conversation-pane"][data-peer="${username}"]`).waitFor({ timeout: WAIT });
}

/** Opens a group from its sidebar row. */
export async function openRoom(page, roomId, name) {
  await roomRow(page, roomId).click();
  await page.locator(`[data-testid="conversation-pane"][data-room="${name}"]`).waitFor({ timeout: WAIT });
}

/** The console errors nobody expected: the browser logs deliberate 4xx answers and dropped sockets itself. */
export function unexpectedErrors(log, expected = []) {
  return log.filter((line) => !expected.some((pattern) => pattern.test(line)));
}
