// Exactly-once into ClickHouse: a backfill killed with SIGKILL again and again, then run to
// the end, leaves every source row in ClickHouse once: 0 lost, 0 duplicated, and the daily
// rollups, token and cost sums and error events equal the source. Both ways of backfilling:
// row by row, and the bulk path in small chunks (three rows in four carry a conversation, so
// its row-by-row remainder is exercised too).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { openStore } from './clickhouse.ts';
import { testConfig } from '../testing/fixtures.ts';
import { afterCheckpoint, checkpointWrittenAt } from '../testing/tokenwatch-process.ts';
import { random } from '../embedded/seed.ts';

const MAIN = new URL('../cli/main.ts', import.meta.url).pathname;
const ROWS = 60_000;
const STREAM = 'claude-nexus-proxy/api_requests';

const MODES = [
  { mode: 'row by row', yaml: '  bulkBackfill: false\n' },
  { mode: 'bulk', yaml: '  bulkChunkRows: 5000\n' },
];

describe.each(MODES)('kill -9 during backfill ($mode)', ({ yaml }) => {
  let db: TestDatabase;
  let dir: string;
  let config: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens,
        cache_read_input_tokens, cache_creation_input_tokens, duration_ms, conversation_id, body, response_body)
      SELECT gen_random_uuid(), 'tenant-' || (i % 7) || '.example.com', now() - make_interval(secs => i * 3), 
        (ARRAY['claude-sonnet-4-5-20250929', 'claude-opus-4-1-20250805', 'claude-haiku-4-5-20251001'])[1 + i % 3], 'inference',
        CASE WHEN i % 40 = 0 THEN 529 ELSE 200 END, 100 + i % 997, i % 613, i % 5 * 1000, i % 11 * 100, 500 + i % 20000,
        CASE WHEN i % 4 = 0 THEN NULL ELSE gen_random_uuid() END,
        jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'question ' || i))),
        jsonb_build_object('content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'answer ' || i)))
      FROM generate_series(1, ${ROWS}) AS i`);
    dir = mkdtempSync(join(tmpdir(), 'tw-kill9-'));
    config = join(dir, 'tokenwatch.yaml');
    writeFileSync(config, `sources:\n  - type: claude-nexus-proxy\n    batchSize: 1000\nclickhouse:\n${yaml}`);
    env = { PATH: process.env.PATH ?? '', DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: join(dir, 'state'), TOKENWATCH_LOG_LEVEL: 'info' };
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loses and duplicates nothing', async () => {
    // Each kill comes after the run's first new checkpoint (plus up to half a second, so it
    // lands anywhere in the next page or chunk), never after a fixed delay: on a loaded
    // machine fixed delays all fell before the first checkpoint.
    const state = join(dir, 'state');
    const rnd = random(99);
    let logs = '';
    for (let kill = 0; kill < 5; kill++) {
      const before = checkpointWrittenAt(state, STREAM);
      const child = spawn(process.execPath, [MAIN, 'backfill', '--no-progress', '--config', config], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr.on('data', (chunk: Buffer) => (logs += chunk.toString()));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await afterCheckpoint(state, STREAM, before, exited, Math.round(rnd() * 500));
      child.kill('SIGKILL');
      await exited;
      // A run that finished before its kill leaves nothing for the next one to resume.
      if (child.exitCode === 0) break;
    }
    const last = spawnSync(process.execPath, [MAIN, 'backfill', '--no-progress', '--config', config], { env, encoding: 'utf8', timeout: 300_000 });
    expect(last.status, last.stderr).toBe(0);
    const done = last.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; rows?: number }).find((l) => l.msg === 'backfill complete')!;
    // The killed runs did part of the work: the last run resumed rather than starting over.
    expect(done.rows).toBeLessThan(ROWS);
    // After a kill, the next start repairs what was written after the checkpoint; after the
    // clean end of the last run, the next start would not.
    expect(`${logs}${last.stderr}`).toContain('repaired rows written after the last checkpoint');
    expect(existsSync(join(dir, 'state', 'clean-shutdown'))).toBe(true);

    const store = await openStore(testConfig(db.url, { stateDir: join(dir, 'state') }));
    try {
      const [ch] = await store.query<Record<string, string>>(`SELECT
          (SELECT count() FROM tokenwatch.requests) AS physical,
          (SELECT count() FROM tokenwatch.requests FINAL) AS distinct_rows,
          (SELECT sum(requests) FROM tokenwatch.requests_daily) AS rollup,
          (SELECT sum(output_tokens) FROM tokenwatch.requests FINAL) AS output_tokens,
          (SELECT sum(output_tokens) FROM tokenwatch.requests_daily) AS rollup_output_tokens,
          (SELECT toString(sum(cost_usd)) FROM tokenwatch.requests_daily) AS rollup_cost,
          (SELECT count() FROM tokenwatch.messages) AS messages_physical,
          (SELECT count() FROM tokenwatch.activity_events FINAL WHERE event_type = 'error') AS errors`);
      const { rows } = await db.pool.query<{ n: number; output: string; messages: number; errors: number }>(
        `SELECT count(*)::int AS n, sum(output_tokens)::text AS output, (count(*) FILTER (WHERE conversation_id IS NOT NULL) * 2)::int AS messages,
           (count(*) FILTER (WHERE response_status >= 400))::int AS errors
         FROM api_requests WHERE request_type = 'inference'`,
      );
      expect(Number(ch!.physical), 'duplicated rows').toBe(ROWS);
      expect(Number(ch!.distinct_rows), 'lost rows').toBe(rows[0]!.n);
      expect(Number(ch!.rollup)).toBe(rows[0]!.n);
      expect(Number(ch!.output_tokens)).toBe(Number(rows[0]!.output));
      expect(Number(ch!.rollup_output_tokens)).toBe(Number(rows[0]!.output));
      expect(Number(ch!.messages_physical)).toBe(rows[0]!.messages);
      expect(Number(ch!.errors)).toBe(rows[0]!.errors);
      const [raw] = await store.query<{ cost: string }>('SELECT toString(sum(cost_usd)) AS cost FROM tokenwatch.requests FINAL');
      expect(ch!.rollup_cost).toBe(raw!.cost);
    } finally {
      await store.close();
    }
  });
});
