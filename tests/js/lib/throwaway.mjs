// Services a test owns outright, so it can kill or stop them: a redis-server and a PostgreSQL
// cluster on loopback ports of their own, never the machine's shared ones.

import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eventually, freePort } from './harness.mjs';

const run = promisify(execFile);

/** A redis-server of this test's own on `port`, keeping nothing on disk. */
export async function startRedis(port) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await eventually(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), `redis-server on ${port} accepts connections`, 10_000);
  return proc;
}

function pgBinDir() {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(path.join(root, v, 'bin', 'pg_ctl'))) return path.join(root, v, 'bin');
  throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin');
}

/**
 * A PostgreSQL cluster of the test's own in a fresh temp dir, owned and run by the `postgres` OS
 * user (PostgreSQL refuses to run as root), listening on 127.0.0.1:`port` only, trust auth.
 * `stop()` is `pg_ctl stop -m immediate` (a crash, as far as the clients can tell); `start()`
 * starts it again on the same port; `destroy()` stops it and removes the dir.
 */
export async function startThrowawayPostgres() {
  const bin = pgBinDir();
  const base = await mkdtemp(path.join(tmpdir(), 'nexus-pg-'));
  const data = path.join(base, 'data');
  await mkdir(data, { mode: 0o700 });
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  for (const p of [base, data]) await chown(p, Number(uid), Number(gid));
  const asPostgres = (cmd, args, timeout = 60_000) =>
    run('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { timeout });

  await asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const logFile = path.join(base, 'postgres.log');
  const opts = `-p ${port} -k ${base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const pg = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dir: base,
    running: false,
    async start() {
      await asPostgres('pg_ctl', ['-D', data, '-o', opts, '-l', logFile, '-w', '-t', '60', 'start']);
      pg.running = true;
    },
    async stop() {
      await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '60', 'stop']);
      pg.running = false;
    },
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    async destroy() {
      try {
        await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
      } catch {
        // Already stopped, or pg_ctl failed: kill the postmaster we started, by its pid file.
        const pidLine = await readFile(path.join(data, 'postmaster.pid'), 'utf8').catch(() => '');
        const pid = Number(pidLine.split('\n')[0]);
        if (pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await rm(base, { recursive: true, force: true }).catch(() => {});
    },
  };
  try {
    await pg.start();
  } catch (err) {
    await pg.destroy();
    throw err;
  }
  return pg;
}

