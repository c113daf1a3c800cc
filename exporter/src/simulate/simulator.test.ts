// The traffic simulator writes what the real systems write, the way they write it: several
// tenants of very different sizes, multi-turn conversations with branches and sub-tasks,
// 429 and 529 bursts, a daily rhythm, quotas past 80, 90 and 100 %, LiteLLM teams, keys and
// failures; live rows committed when their response ends. The same seed gives the same
// rows, and tokenwatch reads every simulated row without a single bad-row report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { MemorySink } from '../sinks/memory-sink.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { RowQuality } from '../quality/row-quality.ts';
import { Simulator } from './simulator.ts';
import { SourceName } from '../model/events.ts';

const NOW = Date.parse('2026-11-20T16:00:00Z');
const sources = SourceName.options;

describe('traffic simulator', () => {
  let a: TestDatabase;
  let b: TestDatabase;
  beforeAll(async () => {
    [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    for (const db of [a, b]) {
      const simulator = new Simulator(db.pool, { seed: 7, rate: 0.15, sources, now: () => NOW });
      await simulator.setup();
      await simulator.history(2);
    }
  });
  afterAll(async () => {
    await a.drop();
    await b.drop();
  });

  it('gives the same rows for the same seed', async () => {
    for (const table of ['api_requests', '"LiteLLM_SpendLogs"', 'conversation_transcripts', 'conversations', 'agent_usage']) {
      // created_at is the database's own clock at insert.
      // agent_usage's id is the database's gen_random_uuid().
      const drop = table === 'agent_usage' ? " - 'id'" : '';
      const digest = async (db: TestDatabase) => (await db.pool.query<{ d: string }>(`SELECT md5(string_agg(h, ',' ORDER BY h)) AS d FROM (SELECT md5((to_jsonb(t) - 'created_at'${drop})::text) AS h FROM ${table} t) x`)).rows[0]!.d;
      expect(await digest(a), table).toBe(await digest(b));
    }
  });

  it('looks like real traffic', async () => {
    const q = async <T>(sql: string) => (await a.pool.query(sql)).rows as T[];
    const tenants = await q<{ n: number }>('SELECT count(*)::int AS n FROM api_requests GROUP BY domain ORDER BY 1 DESC');
    expect(tenants.length).toBeGreaterThanOrEqual(10);
    expect(tenants[0]!.n / tenants.at(-1)!.n).toBeGreaterThan(5);
    const [shape] = await q<Record<"rate_limited" | "overloaded" | "subtasks" | "branches" | "models" | "longest" | "conversations" | "median_output" | "max_output" | "median_ms" | "p99_ms", number>>(`SELECT
        count(*) FILTER (WHERE response_status = 429)::int AS rate_limited, count(*) FILTER (WHERE response_status = 529)::int AS overloaded,
        count(*) FILTER (WHERE is_subtask)::int AS subtasks, count(*) FILTER (WHERE branch_id LIKE 'branch_%')::int AS branches,
        count(DISTINCT model)::int AS models, max(message_count)::int AS longest, count(DISTINCT conversation_id)::int AS conversations,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY output_tokens)::int AS median_output, max(output_tokens)::int AS max_output,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms)::int AS median_ms, percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms)::int AS p99_ms
      FROM api_requests`);
    expect(shape).toMatchObject({ models: 4 });
    for (const key of ['rate_limited', 'overloaded', 'subtasks', 'branches'] as const) expect(shape![key], key).toBeGreaterThan(0);
    expect(shape!.longest).toBeGreaterThan(8);
    expect(shape!.p99_ms / shape!.median_ms).toBeGreaterThan(4);
    expect(shape!.max_output / shape!.median_output).toBeGreaterThan(8);
    // The daily rhythm: the busiest hour of a weekday has several times the traffic of the quietest.
    const hours = await q<{ n: number }>("SELECT count(*)::int AS n FROM api_requests WHERE timestamp >= '2026-11-19' AND timestamp < '2026-11-20' GROUP BY date_trunc('hour', timestamp)");
    expect(Math.max(...hours.map((h) => h.n)) / Math.min(...hours.map((h) => h.n))).toBeGreaterThan(3);
    // Sub-tasks point at the request that spawned them, which was written first.
    const [orphans] = await q<{ n: number }>('SELECT count(*)::int AS n FROM api_requests s LEFT JOIN api_requests p ON p.request_id = s.parent_task_request_id WHERE s.is_subtask AND p.request_id IS NULL');
    expect(orphans!.n).toBe(0);
    const [gateway] = await q<Record<string, number>>(`SELECT count(DISTINCT team_id)::int AS teams, count(DISTINCT api_key)::int AS keys,
        count(*) FILTER (WHERE status = 'failure')::int AS failures, count(DISTINCT custom_llm_provider)::int AS providers FROM "LiteLLM_SpendLogs"`);
    expect(gateway).toMatchObject({ teams: 5 });
    expect(gateway!.keys).toBeGreaterThan(10);
    expect(gateway!.failures).toBeGreaterThan(0);
    expect(gateway!.providers).toBeGreaterThanOrEqual(4);
    // Quotas: clients below 80 %, past 80, past 90 and past 100 % of their tier's voice minutes.
    const shares = (await q<{ share: number }>(`SELECT sum(u.voice_seconds_used)::float / max(t.voice_seconds_per_month) AS share
      FROM agent_usage u JOIN clients c ON c.id = u.client_id JOIN tier_quotas t ON t.tier = c.tier::text
      WHERE u.period_start = date_trunc('month', '2026-11-20'::date)::date GROUP BY c.id`)).map((r) => r.share);
    for (const [low, high] of [[0, 0.8], [0.8, 0.9], [0.9, 1], [1, 10]]) expect(shares.some((s) => s >= low! && s < high!), `${low}-${high}`).toBe(true);
    const [talk] = await q<Record<"channels" | "conversations" | "transcripts", number>>(`SELECT count(DISTINCT channel)::int AS channels, count(*)::int AS conversations,
        (SELECT count(*)::int FROM conversation_transcripts) AS transcripts FROM conversations`);
    expect(talk!.channels).toBe(4);
    expect(talk!.transcripts).toBeGreaterThan(talk!.conversations * 2);
  });

  it('commits live rows when their response ends, so they arrive late and out of order', async () => {
    // A fixed weekday afternoon, after the history: at the real clock's night hours the diurnal
    // rhythm runs at a third of the rate and too few responses end within the 30 s.
    let now = NOW + 5 * 24 * 3_600_000;
    const live = new Simulator(a.pool, { seed: 7, trafficSeed: 99, rate: 20, sources, now: () => now });
    for (let i = 0; i < 120; i++) {
      now += 250;
      await live.tick();
    }
    const rows = (await a.pool.query<{ ts: Date; created: Date; duration: number }>(
      `SELECT timestamp AS ts, created_at AS created, duration_ms AS duration FROM api_requests WHERE timestamp > to_timestamp($1 / 1000.0) ORDER BY created_at`, [now - 30_000 - 60_000],
    )).rows;
    expect(live.counts.api_requests).toBeGreaterThan(100);
    // Written no earlier than the response ended (the simulated clock runs ahead of created_at's wall clock, so compare the order).
    let outOfOrder = 0;
    for (let i = 1; i < rows.length; i++) if (rows[i]!.ts < rows[i - 1]!.ts) outOfOrder += 1;
    expect(outOfOrder).toBeGreaterThan(0);
  });

  it('is read by tokenwatch without a single bad-row report, every request counted', async () => {
    const quality = new RowQuality(silentLogger(), 60_000);
    const sink = new MemorySink();
    const pipeline = await Pipeline.open({ config: testConfig(b.url), logger: silentLogger(), sinks: [sink], store: new MemoryCheckpointStore(), autoSources: false, quality });
    await pipeline.backfill();
    await pipeline.close();
    expect(quality.snapshot()).toEqual([]);
    const { rows } = await b.pool.query<{ n: number }>(`SELECT ((SELECT count(*) FROM api_requests WHERE request_type = 'inference') + (SELECT count(*) FROM "LiteLLM_SpendLogs"))::int AS n`);
    expect(sink.events.filter((e) => e.kind === 'request')).toHaveLength(rows[0]!.n);
  });
});
