// How the server serves the client (issue 16): the headers a static site should have, and the app
// loading under the server's own Content-Security-Policy (no policy added by the test here) with no
// violation and no console error. scripts/test-release.sh runs it against the release binary
// started in an empty folder; `npm run e2e` runs it against every server under test.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { BASES, CSP, SKIP, byTestId, launch, shot, signedInAs, unexpectedErrors, watchConsole } from './helpers.mjs';

const BASE = BASES[0];

async function get(path, headers = {}) {
  const res = await fetch(`${BASE}${path}`, { headers, redirect: 'manual' });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body };
}

describe('the served web client', { skip: SKIP }, () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  test('static files carry the caching, compression and security headers', async () => {
    const index = await get('/');
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /^text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.equal(index.headers.get('content-security-policy'), CSP);
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(index.headers.get('referrer-policy'), 'no-referrer');
    const etag = index.headers.get('etag');
    assert.ok(etag, 'index.html has an ETag');
    assert.equal((await get('/', { 'if-none-match': etag })).status, 304, 'a matching ETag gets 304');

    const html = index.body.toString();
    const script = /<script[^>]+src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script, 'index.html loads a hashed script');
    // Node's fetch asks for gzip and br by itself and decodes; look at what was sent.
    for (const [accept, encoding] of [['br', 'br'], ['gzip', 'gzip'], ['identity', null]]) {
      const res = await get(script, { 'accept-encoding': accept });
      assert.equal(res.status, 200, `${script} with Accept-Encoding: ${accept}`);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.equal(res.headers.get('content-encoding'), encoding, `Content-Encoding for ${accept}`);
      assert.match(res.headers.get('content-type'), /javascript/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.match(res.headers.get('vary') ?? '', /accept-encoding/i);
    }

    const deep = await get('/some/deep/link');
    assert.equal(deep.status, 200, 'an app path is the app');
    assert.equal(deep.body.toString(), html);
    const api = await get('/api/no-such-route');
    assert.equal(api.status, 404, 'an unknown /api path is a 404');
    assert.match(api.headers.get('content-type'), /json/);
    assert.equal(JSON.parse(api.body).statusCode, 404);
    assert.equal((await get('/assets/index-missing.js')).status, 404, 'a missing asset is a 404, not the app');
  });

  test('the app renders under the server\'s own policy: nothing blocked, no console error', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const page = await context.newPage();
    const log = [];
    watchConsole(page, 'page', log);
    try {
      const response = await page.goto(BASE);
      assert.equal(response.status(), 200);
      assert.equal(response.headers()['content-security-policy'], CSP, 'the page came with the server\'s policy');
      // The sign-in form, styled by the stylesheet (a blocked stylesheet leaves no rules).
      await byTestId(page, 'login-username').waitFor({ timeout: 15_000 });
      const rules = await page.evaluate(() => [...document.styleSheets].reduce((n, s) => n + s.cssRules.length, 0));
      assert.ok(rules > 0, 'the stylesheet applied');

      const username = `served_${randomBytes(4).toString('hex')}`;
      await byTestId(page, 'register-toggle').click();
      await byTestId(page, 'login-username').fill(username);
      await byTestId(page, 'login-password').fill('correct horse battery');
      await byTestId(page, 'login-submit').click();
      await signedInAs(page, username);
      await page.waitForLoadState('networkidle');
      await shot(page, 'served-app.png');

      assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'no CSP violation');
      assert.deepEqual(unexpectedErrors(log), [], 'no console error');
    } finally {
      await context.close();
    }
  });
});
