// No secret ever leaves tokenwatch: a database password, a ClickHouse URL password and a probe's
// bearer token, configured everywhere they can go (the environment, a *_FILE secret, the YAML
// file), through check, backfill and run, against reachable and unreachable servers, in both
// log formats at debug level. Every byte of output, every HTTP response and every file of the
// state directory is searched for them.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dropTestRole, type TestDatabase } from '../testing/databases.ts';
import { seedAll } from '../embedded/seed.ts';
import { freePortOnLoopback } from '../embedded/ports.ts';
import { startTokenwatch, waitUntil } from '../testing/tokenwatch-process.ts';

const MAIN = new URL('./main.ts', import.meta.url).pathname;

/** Every file under `dir`, as bytes. */
function files(dir: string): { path: string; bytes: Buffer }[] {
  const out: { path: string; bytes: Buffer }[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...files(path));
    else out.push({ path, bytes: readFileSync(path) });
  }
  return out;
}

describe('secrets', () => {
  const secrets = { db: `pgSECRET${randomBytes(6).toString('hex')}`, clickhouse: `chSECRET${randomBytes(6).toString('hex')}`, bearer: `tokSECRET${randomBytes(6).toString('hex')}` };
  let db: TestDatabase;
  let dir: string;
  const role = `tw_secret_${randomBytes(3).toString('hex')}`;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
    await seedAll(db.pool, { requests: 300, spendLogs: 100 });
    await db.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD '${secrets.db}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
    dir = mkdtempSync(join(tmpdir(), 'tw-secrets-'));
  });
  afterAll(async () => {
    await db.drop();
    await dropTestRole(role);
    rmSync(dir, { recursive: true, force: true });
  });

  it('appear in no output, HTTP response or state file', async () => {
    // A probe target that wants the bearer token (and answers 401 to anything else).
    let probedWithToken = false;
    const upstream = createServer((req, res) => {
      if (req.headers.authorization === `Bearer ${secrets.bearer}`) probedWithToken = true;
      res.statusCode = req.headers.authorization === `Bearer ${secrets.bearer}` ? 200 : 401;
      res.end();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}/`;
    const reachable = db.url.replace('postgres@', `${role}:${secrets.db}@`);
    const unreachable = `postgres://${role}:${secrets.db}@127.0.0.1:${await freePortOnLoopback()}/nowhere`;
    const deadClickHouse = `http://tokenwatch:${secrets.clickhouse}@127.0.0.1:${await freePortOnLoopback()}`;
    writeFileSync(join(dir, 'database-url'), `${reachable}\n`);
    writeFileSync(join(dir, 'bearer'), `${secrets.bearer}\n`);
    const probes = (file: boolean) => `probes:\n  interval: 1s\n  http:\n    - name: upstream\n      url: ${upstreamUrl}\n      ${file ? `bearerTokenFile: ${join(dir, 'bearer')}` : `bearerToken: ${secrets.bearer}`}\n`;
    writeFileSync(join(dir, 'token-inline.yaml'), probes(false));
    writeFileSync(join(dir, 'token-file.yaml'), probes(true));
    writeFileSync(join(dir, 'url-in-file.yaml'), `sources:\n  - type: claude-nexus-proxy\n    databaseUrl: ${unreachable}\n${probes(false)}`);

    const outputs: { what: string; text: string }[] = [];
    const stateDirs: string[] = [];
    const scenarios: { name: string; env: Record<string, string> }[] = [
      { name: 'reachable, secret file', env: { DATABASE_URL_FILE: join(dir, 'database-url'), TOKENWATCH_CONFIG: join(dir, 'token-file.yaml') } },
      { name: 'reachable, inline', env: { DATABASE_URL: reachable, TOKENWATCH_CONFIG: join(dir, 'token-inline.yaml') } },
      { name: 'database unreachable', env: { DATABASE_URL: unreachable, TOKENWATCH_CONFIG: join(dir, 'token-inline.yaml') } },
      { name: 'database URL in the file, unreachable', env: { TOKENWATCH_CONFIG: join(dir, 'url-in-file.yaml') } },
      { name: 'ClickHouse unreachable', env: { DATABASE_URL: reachable, CLICKHOUSE_URL: deadClickHouse, TOKENWATCH_CONFIG: join(dir, 'token-inline.yaml') } },
    ];
    let n = 0;
    for (const scenario of scenarios) {
      for (const format of ['json', 'text']) {
        const stateDir = join(dir, `state-${n++}`);
        stateDirs.push(stateDir);
        const env = { ...scenario.env, TOKENWATCH_STATE_DIR: stateDir, TOKENWATCH_LOG_FORMAT: format, TOKENWATCH_LOG_LEVEL: 'debug' };
        for (const args of [format === 'json' ? ['check', '--json', '--log-level', 'debug'] : ['check', '--log-level', 'debug'], ['backfill', '--no-progress', '--json']]) {
          const result = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '', ...env } });
          outputs.push({ what: `${scenario.name} ${format} ${args.join(' ')}`, text: `${result.stdout}\n${result.stderr}` });
        }
        const address = `127.0.0.1:${await freePortOnLoopback()}`;
        const tw = startTokenwatch(['run'], env, address);
        try {
          // Serving, and the probe has run (or the process ended: the ClickHouse scenario exits 1).
          await waitUntil(async () => tw.child.exitCode !== null || (await tw.get('/metrics')).text.includes('tokenwatch_probe_up'), 'run serving', 30_000, 200).catch(() => undefined);
          if (tw.child.exitCode === null) {
            await new Promise((resolve) => setTimeout(resolve, 1500));
            for (const path of ['/metrics', '/readyz', '/healthz', '/']) outputs.push({ what: `${scenario.name} ${format} GET ${path}`, text: (await tw.get(path)).text });
          }
        } finally {
          tw.child.kill('SIGTERM');
          await tw.exited;
        }
        outputs.push({ what: `${scenario.name} ${format} run`, text: tw.stderr() });
      }
    }
    upstream.close();
    expect(probedWithToken, 'the probe sent its bearer token').toBe(true);
    expect(stateDirs.filter((d) => existsSync(d)).length).toBeGreaterThan(4);
    // The unreachable and ClickHouse scenarios did fail (so their error paths were taken).
    expect(outputs.some((o) => /ECONNREFUSED|cannot connect/.test(o.text))).toBe(true);
    expect(outputs.find((o) => o.what.startsWith('ClickHouse unreachable json run'))!.text).toMatch(/ClickHouse|ECONNREFUSED/);
    for (const secret of Object.values(secrets)) {
      for (const o of outputs) expect(o.text.includes(secret), `${secret.slice(0, 8)}… in ${o.what}`).toBe(false);
      for (const stateDir of stateDirs.filter((d) => existsSync(d))) {
        for (const f of files(stateDir)) expect(f.bytes.includes(Buffer.from(secret)), `${secret.slice(0, 8)}… in ${f.path}`).toBe(false);
      }
    }
  });
});
