// The server's text logs written to a pipe or a file carry no colour codes (issue 16, item 8):
// the harness reads stderr through a pipe, as a log file or a log collector would.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { http, withServer } from '../lib/harness.mjs';

test('text logs to a pipe have no ANSI escape codes', withServer({ env: { LOG_FORMAT: 'text' } }, async (w) => {
  assert.equal((await http(`${w.url}/health`)).status, 200);
  const log = w.server.log();
  assert.match(log, /listening/, 'the log has the start-up lines');
  assert.doesNotMatch(log, /\x1b\[/, `no escape codes in:\n${log.slice(0, 500)}`);
}));
