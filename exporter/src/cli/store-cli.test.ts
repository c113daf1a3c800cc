// query, export and report as a user runs them, against the embedded store, and query while
// `tokenwatch run` holds that store.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { seedAll } from '../embedded/seed.ts';
import { freePortOnLoopback } from '../embedded/ports.ts';

const MAIN = new URL('./main.ts', import.meta.url).pathname;

describe('store commands', () => {
  let db: TestDatabase;
  let dir: string;
  let env: Record<string, string>;
  const tokenwatch = (args: string[], extra: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [MAIN, ...args, '--log-level', 'warn'], { env: { ...env, ...extra }, encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
    await seedAll(db.pool, { requests: 2000, spendLogs: 800 });
    dir = mkdtempSync(join(tmpdir(), 'tw-storecli-'));
    env = { PATH: process.env.PATH ?? '', DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: dir };
    const backfill = tokenwatch(['backfill', '--no-progress']);
    expect(backfill.code, backfill.stderr).toBe(0);
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('report usage: per-tenant totals of the month equal the source tables', async () => {
    const month = new Date().toISOString().slice(0, 7);
    const report = tokenwatch(['report', 'usage', '--month', month, '--by', 'tenant', '--format', 'json']);
    expect(report.code, report.stderr).toBe(0);
    const rows = JSON.parse(report.stdout) as { tenant: string; requests: string; output_tokens: string; cost_usd: string }[];
    const { rows: truth } = await db.pool.query<{ tenant: string; n: number; output: string }>(`
      SELECT domain AS tenant, count(*)::int AS n, sum(output_tokens)::text AS output FROM api_requests
        WHERE request_type = 'inference' AND to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM') = $1 GROUP BY 1
      UNION ALL SELECT team_id, count(*)::int, sum(completion_tokens)::text FROM "LiteLLM_SpendLogs" WHERE to_char("startTime", 'YYYY-MM') = $1 GROUP BY 1`, [month]);
    expect(rows.length).toBe(truth.length);
    for (const t of truth) {
      const r = rows.find((x) => x.tenant === t.tenant)!;
      expect(Number(r.requests), t.tenant).toBe(t.n);
      expect(Number(r.output_tokens)).toBe(Number(t.output));
    }
    const { rows: spend } = await db.pool.query<{ s: number }>(`SELECT coalesce(sum(spend), 0)::float8 AS s FROM "LiteLLM_SpendLogs" WHERE to_char("startTime", 'YYYY-MM') = $1 AND team_id = 'team-search'`, [month]);
    expect(Number(rows.find((r) => r.tenant === 'team-search')!.cost_usd)).toBeCloseTo(spend[0]!.s, 6);
    expect(tokenwatch(['report', 'usage', '--month', '2026-13']).stderr).toContain('--month must be YYYY-MM');
  });

  it('export conversations writes every stored message of the tenant, as CSV or JSON', () => {
    const count = tokenwatch(['query', "SELECT count() AS n FROM tokenwatch.messages FINAL WHERE tenant = 'acme.example.com'", '--json']);
    // Only the result: no log line on stdout or stderr at the default level.
    expect(count.stderr).toBe('');
    const expected = Number((JSON.parse(count.stdout) as { n: string }[])[0]!.n);
    expect(expected).toBeGreaterThan(100);
    const json = tokenwatch(['export', 'conversations', '--tenant', 'acme.example.com', '--format', 'json']);
    expect(json.code, json.stderr).toBe(0);
    const messages = JSON.parse(json.stdout) as { tenant: string; content: string }[];
    expect(messages).toHaveLength(expected);
    expect(messages.every((m) => m.tenant === 'acme.example.com')).toBe(true);
    expect(messages.some((m) => m.content.includes('[REDACTED_EMAIL]'))).toBe(true);
    const csv = tokenwatch(['export', 'conversations', '--tenant', 'acme.example.com', '--from', '2000-01-01', '--to', '2999-01-01']);
    expect(csv.stdout.split('\n')[0]).toBe('tenant,conversation_id,message_id,sequence,role,channel,agent,user,request_id,created_at,content');
  });

  it('export refuses a --from or --to that is not a time, or a range that is empty, with exit 2', () => {
    const words = tokenwatch(['export', 'conversations', '--from', 'yesterday']);
    expect(words.code).toBe(2);
    expect(words.stderr).toContain('--from yesterday is not a time: use a date or a time such as 2026-11-01 or 2026-11-01T12:00:00Z');
    expect(words.stderr).not.toContain('SELECT');
    const backwards = tokenwatch(['export', 'conversations', '--from', '2026-11-02', '--to', '2026-11-01']);
    expect(backwards.code).toBe(2);
    expect(backwards.stderr).toContain('--from 2026-11-02 is not before --to 2026-11-01');
  });

  it('output cut short by a closed pipe (| head) ends quietly', () => {
    const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${MAIN}" query --format csv --log-level warn "SELECT number FROM numbers(200000)" | head -n 2`], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout).toBe('number\n0\n');
    expect(r.stderr).not.toMatch(/EPIPE|Error/);
    expect(r.status).toBe(0);
  });

  it('query refuses anything but one read-only statement, naming what it found (exit 2: nothing ran)', () => {
    const write = tokenwatch(['query', 'DROP TABLE tokenwatch.requests']);
    expect(write.code).toBe(2);
    expect(write.stderr).toContain('DROP writes: only read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) are allowed');
    const two = tokenwatch(['query', 'SELECT 1; DROP TABLE tokenwatch.requests']);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('only one statement is allowed');
    const typo = tokenwatch(['query', 'SELEC tenant FROM tokenwatch.requests']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('"SELEC" does not start a read-only statement (did you mean SELECT?)');
  });

  it('query works while `tokenwatch run` holds the embedded store', async () => {
    const port = await freePortOnLoopback();
    const child = spawn(process.execPath, [MAIN, 'run', '--log-level', 'warn'], { env: { ...env, TOKENWATCH_LISTEN_ADDRESS: `127.0.0.1:${port}` }, stdio: 'ignore' });
    try {
      let ready = false;
      for (let i = 0; i < 120 && !ready; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
      }
      expect(ready).toBe(true);
      const result = tokenwatch(['query', 'SELECT count() AS n FROM tokenwatch.requests FINAL', '--format', 'json'], { TOKENWATCH_LISTEN_ADDRESS: `127.0.0.1:${port}` });
      expect(result.code, result.stderr).toBe(0);
      const { rows } = await db.pool.query<{ n: number }>(`SELECT ((SELECT count(*) FROM api_requests WHERE request_type = 'inference') + (SELECT count(*) FROM "LiteLLM_SpendLogs"))::int AS n`);
      expect(Number((JSON.parse(result.stdout) as { n: string }[])[0]!.n)).toBe(rows[0]!.n);
      const refused = await fetch(`http://127.0.0.1:${port}/api/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'DROP TABLE tokenwatch.requests' }) });
      expect(refused.status).toBe(400);
      // Pointed at the wrong address, it says what it tried and how to set it (it printed "fetch failed").
      const elsewhere = await freePortOnLoopback();
      const lost = tokenwatch(['query', 'SELECT 1'], { TOKENWATCH_LISTEN_ADDRESS: `127.0.0.1:${elsewhere}` });
      expect(lost.code).toBe(1);
      expect(lost.stderr).toContain(`http://127.0.0.1:${elsewhere}/api/v1/query did not answer (ECONNREFUSED)`);
      expect(lost.stderr).toContain('TOKENWATCH_LISTEN_ADDRESS');
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
    }
  });
});
