// The `tokenwatch` command as a user runs it: a separate process, real databases.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { seedAll } from '../embedded/seed.ts';
import { freePortOnLoopback } from '../embedded/ports.ts';

const MAIN = new URL('./main.ts', import.meta.url).pathname;

function tokenwatch(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function logLines(stderr: string): Record<string, unknown>[] {
  return stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('tokenwatch CLI', () => {
  let db: TestDatabase;
  let stateDir: string;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
    await seedAll(db.pool, { requests: 2000, spendLogs: 500 });
    stateDir = mkdtempSync(join(tmpdir(), 'tokenwatch-cli-'));
  });
  afterAll(async () => {
    await db.drop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('has --help on every command', () => {
    const top = tokenwatch(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['run', 'backfill', 'check', 'verify', 'simulate', 'migrate', 'query', 'export conversations', 'report usage']) {
      expect(top.stdout).toContain(command.split(' ')[0]);
      const help = tokenwatch([...command.split(' '), '--help']);
      expect(help.code, command).toBe(0);
      expect(help.stdout).toContain('--config <file>');
      expect(help.stdout).toContain('DATABASE_URL');
      expect(help.stdout, command).toMatch(new RegExp(`Examples:\\n  \\$ (DATABASE_URL=\\S+ )?tokenwatch ${command}`));
    }
    expect(tokenwatch(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('simulate writes a history into a database of its own, creating the tables, and reports what it wrote', async () => {
    const target = await createTestDatabase();
    try {
      const result = tokenwatch(['simulate', '--history', '3h', '--rate', '0.5', '--no-live', '--json'], { DATABASE_URL: target.url });
      expect(result.code, result.stderr).toBe(0);
      const summary = JSON.parse(result.stdout) as { rows: Record<string, number> };
      const { rows } = await target.pool.query<Record<string, number>>(`SELECT (SELECT count(*) FROM api_requests)::int AS api_requests,
        (SELECT count(*) FROM "LiteLLM_SpendLogs")::int AS "LiteLLM_SpendLogs", (SELECT count(*) FROM conversation_transcripts)::int AS conversation_transcripts`);
      expect(summary.rows).toMatchObject(rows[0]!);
      // 3 h at 0.5 requests/s on average over a week; traffic follows the hour of day (896 rows
      // for a run at 01:50 UTC), so only a floor far below the night's rate.
      expect(rows[0]!.api_requests).toBeGreaterThan(200);
      // stdout holds the summary alone; progress and log lines go to stderr.
      expect(result.stdout.trim().split('\n')).toHaveLength(1);
    } finally {
      await target.drop();
    }
  });

  it('exits 2 on an invalid configuration file before doing anything', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenwatch-bad-'));
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, `stateDir: ${join(dir, 'state')}\nsources:\n  - type: litellm\n    maxCommitDelay: soon\n`);
    for (const command of ['run', 'backfill', 'check']) {
      const result = tokenwatch([command, '--config', config], { DATABASE_URL: db.url });
      expect(result.code, command).toBe(2);
      expect(result.stderr).toContain('sources.0.maxCommitDelay: "soon" is not a duration');
    }
    expect(existsSync(join(dir, 'state'))).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits 2 at once, naming the setting and the path, when the state directory cannot be written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenwatch-state-'));
    const file = join(dir, 'not-a-directory');
    writeFileSync(file, '');
    // /proc: a directory nobody can create files in (it made run spin in a mkdir loop); a file where a directory should be.
    for (const stateDir of ['/proc', file]) {
      for (const command of ['check', 'backfill', 'run']) {
        const started = Date.now();
        const result = tokenwatch([command, '--no-progress'].slice(0, command === 'backfill' ? 2 : 1), { DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: stateDir, TOKENWATCH_LISTEN_ADDRESS: '127.0.0.1:0' });
        expect(result.code, `${command} ${stateDir}: ${result.stderr}`).toBe(2);
        expect(result.stderr).toContain(`stateDir (TOKENWATCH_STATE_DIR) ${stateDir} is not a writable directory`);
        expect(Date.now() - started).toBeLessThan(15_000);
        expect(result.stderr, 'nothing starts first').not.toContain('serving HTTP');
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('backfill reads everything once and is safe to repeat; Ctrl-C says what happened and exits 130', async () => {
    const env = { DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: stateDir };
    // Interrupted while opening or reading (in a state directory of its own): a message, the
    // shell's code, and the next backfill resumes.
    const interruptedDir = mkdtempSync(join(tmpdir(), 'tokenwatch-interrupted-'));
    const interruptedEnv = { DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: interruptedDir };
    const interrupted = spawn(process.execPath, [MAIN, 'backfill', '--no-progress', '--log-format', 'json'], { env: { PATH: process.env.PATH ?? '', ...interruptedEnv }, stdio: ['ignore', 'ignore', 'pipe'] });
    let interruptedErr = '';
    interrupted.stderr.on('data', (chunk: Buffer) => {
      interruptedErr += chunk.toString();
      if (interruptedErr.includes('ClickHouse migrations applied')) interrupted.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => interrupted.on('exit', (c) => resolve(c)));
    expect(code, interruptedErr).toBe(130);
    expect(interruptedErr).toMatch(/^tokenwatch: (backfill )?interrupted by SIGINT/m);
    const resumed = tokenwatch(['backfill', '--no-progress'], interruptedEnv);
    expect(resumed.code, resumed.stderr).toBe(0);
    rmSync(interruptedDir, { recursive: true, force: true });
    const first = tokenwatch(['backfill', '--no-progress'], env);
    expect(first.code, first.stderr).toBe(0);
    const done = logLines(first.stderr).find((l) => l.msg === 'backfill complete') as { streams: Record<string, { rowsRead: number }> };
    const { rows } = await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM api_requests WHERE request_type = 'inference'");
    expect(done.streams['claude-nexus-proxy/api_requests']!.rowsRead).toBe(rows[0]!.n);
    expect(done.streams['litellm/LiteLLM_SpendLogs']!.rowsRead).toBe(500);
    const second = tokenwatch(['backfill', '--no-progress'], env);
    expect(second.code).toBe(0);
    const again = logLines(second.stderr).find((l) => l.msg === 'backfill complete') as { streams: Record<string, { rowsRead: number }> };
    expect(again.streams['claude-nexus-proxy/api_requests']!.rowsRead).toBe(0);
    expect(again.streams['litellm/LiteLLM_SpendLogs']!.rowsRead).toBe(0);
    // verify: the store holds every row of the closed days read.
    const verified = tokenwatch(['verify', '--days', '3'], env);
    expect(verified.code, `${verified.stdout}${verified.stderr}`).toBe(0);
    expect(verified.stdout).toMatch(/^claude-nexus-proxy\/api_requests: (\S+ to \S+ \(exclusive\): ok|no closed day to compare yet)/m);
    expect(verified.stdout).toContain('litellm/LiteLLM_SpendLogs');
    const badDays = tokenwatch(['verify', '--days', '0'], env);
    expect(badDays.code).toBe(2);
    expect(badDays.stderr).toContain('--days 0: must be a whole number of days from 1 to 366');
  });

  it('check reports tables, permissions and index use on one screen', async () => {
    const ok = tokenwatch(['check'], { DATABASE_URL: db.url });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/stream api_requests: columns selectable; polls use an index on "timestamp"/);
    expect(ok.stdout).toContain('all checks passed');
    expect(ok.stdout).toMatch(/event store \[embedded\][^\n]*\n {2}ok {3}connected, ClickHouse/);
    expect(ok.stdout).not.toContain('FAIL');

    const empty = await createTestDatabase();
    try {
      const bad = tokenwatch(['check'], { DATABASE_URL: empty.url, TOKENWATCH_SOURCES: 'litellm' });
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/FAIL table public\.LiteLLM_SpendLogs: not found/);
      // Sources chosen automatically: each absent one is skipped, but none at all is a failure.
      const none = tokenwatch(['check'], { DATABASE_URL: empty.url });
      expect(none.code, none.stdout).toBe(1);
      expect(none.stdout).toMatch(/FAIL none of the known sources has its tables in this database \(claude-nexus-proxy: api_requests; sidekick-forge: /);
      expect(none.stdout).not.toContain('all checks passed');
      const renamed = tokenwatch(['check'], { DATABASE_URL: db.url.replace('postgres@', 'postgres:topsecret@'), TOKENWATCH_SOURCES: 'claude-nexus-proxy' });
      expect(renamed.stdout).toContain('postgres:****@');
      expect(renamed.stdout + renamed.stderr).not.toContain('topsecret');
    } finally {
      await empty.drop();
    }
  });

  it('exits 2 naming the setting when --web.telemetry-path or --web.listen-address is not usable', () => {
    const path = tokenwatch(['run', '--web.telemetry-path', 'metrics'], { TOKENWATCH_STATE_DIR: stateDir });
    expect(path.code).toBe(2);
    expect(path.stderr).toContain('server.telemetryPath: must be a URL path starting with "/"');
    const address = tokenwatch(['run', '--web.listen-address', 'localhost:99999'], { TOKENWATCH_STATE_DIR: stateDir });
    expect(address.code).toBe(2);
    expect(address.stderr).toContain('server.listenAddress: the port must be 0 to 65535');
  });

  it('SIGTERM while the demo database is first populated: stopped within 10 s, nothing starts reading after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenwatch-seed-stop-'));
    const port = await freePortOnLoopback();
    const child = spawn(process.execPath, [MAIN, 'run', '--log-format', 'json'], {
      env: { PATH: process.env.PATH ?? '', TOKENWATCH_STATE_DIR: dir, TOKENWATCH_LISTEN_ADDRESS: `127.0.0.1:${port}` },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // HTTP is served before the database is opened, so this is the population phase.
      for (let i = 0; i < 400 && !stderr.includes('serving HTTP'); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      const signalled = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const seconds = (Date.now() - signalled) / 1000;
      expect(seconds).toBeLessThan(10);
      const messages = logLines(stderr).map((l) => String(l.msg));
      expect(messages).toContain('shutting down');
      expect(messages.slice(messages.indexOf('shutting down')), stderr).not.toContain('source ready');
      expect(stderr).not.toMatch(/"level":"(error|fatal)"/);
      // Either the demo database was made whole before the signal, or nothing of it is kept
      // (pglite-server.test.ts aborts the population itself).
      const made = messages.some((m) => m.startsWith('no DATABASE_URL: created'));
      expect(existsSync(join(dir, 'embedded-postgres', 'PG_VERSION'))).toBe(made);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('run on embedded defaults (no database configured) serves /readyz and metrics on --web.telemetry-path, and stops on SIGTERM', async () => {
    const port = await freePortOnLoopback();
    const dir = mkdtempSync(join(tmpdir(), 'tokenwatch-run-'));
    const child = spawn(process.execPath, [MAIN, 'run', '--web.listen-address', `127.0.0.1:${port}`, '--web.telemetry-path', '/probe/metrics'], {
      env: { PATH: process.env.PATH ?? '', TOKENWATCH_STATE_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      let ready = false;
      for (let i = 0; i < 120 && !ready; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
      }
      expect(ready, stderr).toBe(true);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/probe/metrics`)).text();
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
      const read = /tokenwatch_source_rows_read_total\{source="claude-nexus-proxy",table="api_requests"\} (\d+)/.exec(metrics);
      expect(Number(read?.[1])).toBeGreaterThanOrEqual(3000);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      // A second process on the same demo state directory is told who holds it (it aborted inside PGlite).
      const second = tokenwatch(['check'], { TOKENWATCH_STATE_DIR: dir });
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`the embedded demo database in ${dir} is in use by process ${child.pid}`);
      expect(second.stderr).not.toContain('Aborted');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(logLines(stderr).some((l) => l.msg === 'shutting down')).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });
});
