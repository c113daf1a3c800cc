// tokenwatch needs no more than read access: the role `tokenwatch check --grants` describes
// (SELECT on exactly the columns the adapters read, no secret column) runs every source's
// backfill and passes `check`; it cannot read a secret; and `check` names the table and
// column of a missing grant.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dropTestRole, type TestDatabase } from '../testing/databases.ts';
import { seedAll } from '../embedded/seed.ts';

const MAIN = new URL('./main.ts', import.meta.url).pathname;

function tokenwatch(args: string[], env: Record<string, string>) {
  const result = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000, env: { PATH: process.env.PATH ?? '', ...env } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('least privilege', () => {
  let db: TestDatabase;
  let dir: string;
  const role = `tw_ro_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(9).toString('hex');
  let roleUrl: string;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
    await seedAll(db.pool, { requests: 1500, spendLogs: 600 });
    dir = mkdtempSync(join(tmpdir(), 'tw-least-privilege-'));
    const url = new URL(db.url);
    url.username = role;
    url.password = password;
    roleUrl = url.toString();
  });
  afterAll(async () => {
    await db.drop();
    await dropTestRole(role);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a role with exactly the printed grants runs every source and passes check, and reads no secret', async () => {
    const grants = tokenwatch(['check', '--grants', '--role', role], { DATABASE_URL: db.url });
    expect(grants.code, grants.stderr).toBe(0);
    expect(grants.stdout).toContain(`GRANT SELECT ("xmin", "request_id"`);
    const grantLines = grants.stdout.split('\n').filter((l) => l.startsWith('GRANT SELECT'));
    expect(grantLines).toHaveLength(11);
    expect(grantLines.join('\n')).not.toMatch(/"headers"|openai_api_key|livekit_api_secret|"api_key"|embeddings/);
    // As psql -v password=… runs it; twice, as an operator re-running it would.
    expect(grants.stdout).toContain(":'password'");
    const script = grants.stdout.replaceAll(":'password'", `'${password}'`);
    await db.pool.query(script);
    await db.pool.query(script);
    // Unchanged (no password chosen) it does not run.
    await expect(db.pool.query(grants.stdout)).rejects.toThrow(/syntax error/);

    const backfill = tokenwatch(['backfill', '--no-progress', '--json'], { DATABASE_URL: roleUrl, TOKENWATCH_STATE_DIR: join(dir, 'state') });
    expect(backfill.code, backfill.stderr).toBe(0);
    const summary = JSON.parse(backfill.stdout) as { streams: Record<string, { rowsRead: number; rejected: number }> };
    const { rows } = await db.pool.query<Record<string, number>>(`SELECT (SELECT count(*) FROM api_requests WHERE request_type = 'inference')::int AS requests,
      (SELECT count(*) FROM "LiteLLM_SpendLogs")::int AS spend, (SELECT count(*) FROM conversation_transcripts)::int AS transcripts`);
    expect(summary.streams['claude-nexus-proxy/api_requests']!.rowsRead).toBe(rows[0]!.requests);
    expect(summary.streams['litellm/LiteLLM_SpendLogs']!.rowsRead).toBe(rows[0]!.spend);
    expect(summary.streams['sidekick-forge/conversation_transcripts']!.rowsRead).toBe(rows[0]!.transcripts);
    // Snapshot queries ran too (usage, agents, conversations).
    expect(summary.streams['sidekick-forge/agent_usage']!.rowsRead).toBeGreaterThan(0);

    const check = tokenwatch(['check'], { DATABASE_URL: roleUrl, TOKENWATCH_STATE_DIR: join(dir, 'state-check') });
    expect(check.code, check.stdout).toBe(0);
    expect(check.stdout).not.toMatch(/secret column|FAIL/);

    const asRole = new pg.Client({ connectionString: roleUrl });
    await asRole.connect();
    try {
      for (const secret of ['SELECT headers FROM api_requests', 'SELECT openai_api_key FROM clients', 'SELECT api_key FROM "LiteLLM_SpendLogs"', 'SELECT embeddings FROM conversation_transcripts']) {
        await expect(asRole.query(secret), secret).rejects.toThrow(/permission denied/);
      }
    } finally {
      await asRole.end();
    }
  });

  it('check names the table and column of a missing grant, and warns about readable secrets', async () => {
    await db.pool.query(`REVOKE SELECT (model) ON api_requests FROM ${role}`);
    const missing = tokenwatch(['check'], { DATABASE_URL: roleUrl, TOKENWATCH_STATE_DIR: join(dir, 'state-check') });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/FAIL table public\.api_requests: no SELECT on column model \(GRANT SELECT \("model"\) ON public\.api_requests TO/);
    await db.pool.query(`GRANT SELECT (model, headers) ON api_requests TO ${role}`);
    const secret = tokenwatch(['check'], { DATABASE_URL: roleUrl, TOKENWATCH_STATE_DIR: join(dir, 'state-check') });
    expect(secret.stdout).toMatch(/warn table public\.api_requests: this role can also read the secret column headers/);
    await db.pool.query(`REVOKE SELECT (headers) ON api_requests FROM ${role}`);
  });
});
