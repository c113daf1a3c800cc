// kill -9 of `tokenwatch run` at random moments while a writer inserts rows and updates them
// as the proxy does, then one last run: ClickHouse must hold every source row exactly once,
// the rollups agree, and the totals in Prometheus (which scraped every run) equal SQL with no
// counter reset. Shared by the polling and the replication kill tests.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { expect } from 'vitest';
import { freePortOnLoopback } from '../embedded/ports.ts';
import { random } from '../embedded/seed.ts';
import { startPrometheus } from './prometheus.ts';
import { afterCheckpoint, checkpointWrittenAt, startTokenwatch, waitUntil } from './tokenwatch-process.ts';
import { startWriter } from './writer.ts';
import { sumSamples } from './metrics-text.ts';
import { testConfig } from './fixtures.ts';
import { openStore } from '../store/clickhouse.ts';

const STREAM = 'claude-nexus-proxy/api_requests';

export interface KillRunOptions {
  db: { url: string; pool: pg.Pool };
  /** A directory of the test's own: the configuration file and the state directory go there. */
  dir: string;
  /** The YAML configuration `run` reads (its sources). */
  config: string;
  kills: number;
  seed: number;
  /** Prefix of the printed summary line. */
  label: string;
}

export async function killRunWhileWriting(options: KillRunOptions): Promise<void> {
  const { db, dir } = options;
  const port = await freePortOnLoopback();
  const address = `127.0.0.1:${port}`;
  const prometheus = await startPrometheus([{ job: 'tokenwatch', targets: [address] }]);
  try {
    const configFile = join(dir, 'tokenwatch.yaml');
    writeFileSync(configFile, options.config);
    const env = { DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: join(dir, 'state'), TOKENWATCH_CONFIG: configFile, TOKENWATCH_LOG_LEVEL: 'warn' };
    // Written as the proxy writes: INSERT, UPDATE with the response, UPDATE (Task tool).
    const writer = startWriter(db.url, { rowsPerInsert: 4, everyMs: 50, inSteps: true });
    const rnd = random(options.seed);
    const delays: number[] = [];
    const state = join(dir, 'state');
    for (let i = 0; i < options.kills; i++) {
      // Killed at a random moment after the run's first new checkpoint (observed progress,
      // not a fixed delay, which a loaded machine can spend before the first poll).
      const before = checkpointWrittenAt(state, STREAM);
      const tw = startTokenwatch(['run'], env, address);
      const delay = Math.round(rnd() * 2000);
      delays.push(delay);
      await afterCheckpoint(state, STREAM, before, tw.exited, delay);
      tw.child.kill('SIGKILL');
      expect((await tw.exited).signal).toBe('SIGKILL');
    }
    await writer.stop();
    const { rows } = await db.pool.query<{ n: number; output: string }>("SELECT count(*)::int AS n, sum(output_tokens)::text AS output FROM api_requests WHERE request_type = 'inference'");
    const total = rows[0]!.n;

    const tw = startTokenwatch(['run'], env, address);
    let seen = 0;
    await waitUntil(async () => (seen = sumSamples((await tw.get('/metrics')).text, 'tokenwatch_requests_total')) === total, 'the last run to count every row', 120_000, 250)
      .catch((error: unknown) => {
        throw new Error(`the last run counted ${seen} of ${total} requests`, { cause: error });
      });
    const metrics = (await tw.get('/metrics')).text;
    expect(sumSamples(metrics, 'tokenwatch_tokens_total', 'type="output"')).toBe(Number(rows[0]!.output));
    // Prometheus saw every run: its total equals SQL and no counter ever went back.
    await waitUntil(async () => (await prometheus.query('sum(tokenwatch_requests_total)'))[0]?.value === total, 'Prometheus to scrape the final total', 20_000, 500);
    const resets = await prometheus.query('sum(resets(tokenwatch_requests_total[1h]))');
    expect(resets[0]?.value ?? 0).toBe(0);
    tw.child.kill('SIGTERM');
    expect((await tw.exited).code).toBe(0);

    const store = await openStore(testConfig(db.url, { stateDir: join(dir, 'state') }));
    try {
      const [ch] = await store.query<Record<string, number>>(`SELECT
          (SELECT count() FROM tokenwatch.requests) AS physical,
          (SELECT uniqExact(request_id) FROM tokenwatch.requests) AS distinct_ids,
          (SELECT sum(requests) FROM tokenwatch.requests_daily) AS rollup`);
      const lost = total - Number(ch!.distinct_ids);
      const duplicated = Number(ch!.physical) - Number(ch!.distinct_ids);
      console.log(`${options.label}kill -9 x${options.kills} (${delays.join(', ')} ms after a checkpoint): ${total} source rows, ${lost} lost, ${duplicated} duplicated, rollup ${ch!.rollup}`);
      expect(lost).toBe(0);
      expect(duplicated).toBe(0);
      expect(Number(ch!.rollup)).toBe(total);
    } finally {
      await store.close();
    }
  } finally {
    await prometheus.stop();
  }
}
