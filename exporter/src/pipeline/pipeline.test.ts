// Ground truth: what the pipeline emits for the three source schemas equals what SQL
// computes on the source tables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { seedAll } from '../embedded/seed.ts';
import { Pipeline } from './pipeline.ts';
import { MemorySink } from '../sinks/memory-sink.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { CanonicalEvent, type MessageEvent, type RequestEvent, type UsageSnapshot, type AgentSnapshot } from '../model/events.ts';
import { Pricing } from '../pricing/pricing.ts';

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

describe('pipeline ground truth', () => {
  let db: TestDatabase;
  let events: CanonicalEvent[];
  const now = new Date();

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
    await seedAll(db.pool, { requests: 3000, spendLogs: 1500, now });
    // A row of another request type, which is not read by default.
    await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, input_tokens) VALUES (gen_random_uuid(), 'acme.example.com', now(), 'claude-3-5-haiku-20241022', 'query_evaluation', 999)`);
    const sink = new MemorySink();
    const pipeline = await Pipeline.open({ config: testConfig(db.url), logger: silentLogger(), sinks: [sink], store: new MemoryCheckpointStore(), autoSources: false });
    await pipeline.backfill();
    await pipeline.close();
    events = sink.events;
  });
  afterAll(async () => {
    await db.drop();
  });

  it('every event satisfies the canonical model', () => {
    expect(events.length).toBeGreaterThan(5000);
    for (const event of events) expect(() => CanonicalEvent.parse(event)).not.toThrow();
  });

  it('Claude Nexus Proxy requests: counts, tokens and estimated cost per tenant equal SQL', async () => {
    const requests = events.filter((e): e is RequestEvent => e.kind === 'request' && e.source === 'claude-nexus-proxy');
    // List prices of each model from the catalog (flat at these prompt sizes: checked), the
    // usage block's 1-hour cache writes and web searches priced as Anthropic does.
    const pricing = new Pricing();
    const models = (await db.pool.query<{ model: string; top: number }>(
      `SELECT model, max(input_tokens + cache_read_input_tokens + cache_creation_input_tokens)::int AS top FROM api_requests WHERE request_type = 'inference' GROUP BY model`,
    )).rows;
    const prices = models.map(({ model, top }) => {
      const p = pricing.report(model, { at: now })!;
      const flat = (t: unknown) => {
        if (typeof t === 'number') return t;
        const tiered = t as { base: number; tiers: { start: number }[] };
        expect(top, `${model} stays below its first tier`).toBeLessThanOrEqual(tiered.tiers[0]!.start);
        return tiered.base;
      };
      return `('${model}', ${flat(p.input)}, ${flat(p.output)}, ${flat(p.cacheRead)}, ${flat(p.cacheWrite5m)}, ${flat(p.cacheWrite1h)}, ${p.webSearchesPerThousand / 1000})`;
    });
    const { rows } = await db.pool.query<{ domain: string; n: number; input: number; output: number; cache_read: number; cache_write: number; errors: number; cost: number }>(`
      WITH prices(model, input, output, cache_read, cache_write, cache_write_1h, web_search) AS (VALUES ${prices.join(', ')}),
      priced AS (
        SELECT r.*, p.input AS p_in, p.output AS p_out, p.cache_read AS p_cr, p.cache_write AS p_cw, p.cache_write_1h AS p_cw1h, p.web_search AS p_ws,
          coalesce((r.usage_data->'cache_creation'->>'ephemeral_1h_input_tokens')::int, 0) AS write_1h,
          coalesce((r.usage_data->'server_tool_use'->>'web_search_requests')::int, 0) AS web_searches
        FROM api_requests r JOIN prices p USING (model)
        WHERE request_type = 'inference')
      SELECT domain, count(*)::int AS n, sum(input_tokens)::int AS input, sum(output_tokens)::int AS output,
        sum(cache_read_input_tokens)::int AS cache_read, sum(cache_creation_input_tokens)::int AS cache_write,
        count(*) FILTER (WHERE response_status >= 400)::int AS errors,
        sum((input_tokens * p_in + output_tokens * p_out + cache_read_input_tokens * p_cr + (cache_creation_input_tokens - write_1h) * p_cw + write_1h * p_cw1h) / 1e6
          + web_searches * p_ws)::float8 AS cost
      FROM priced GROUP BY domain ORDER BY domain`);
    expect(rows.length).toBe(5);
    for (const row of rows) {
      const mine = requests.filter((r) => r.tenant === row.domain);
      expect(mine.length, row.domain).toBe(row.n);
      expect(sum(mine.map((r) => r.inputTokens))).toBe(row.input);
      expect(sum(mine.map((r) => r.outputTokens))).toBe(row.output);
      expect(sum(mine.map((r) => r.cacheReadTokens))).toBe(row.cache_read);
      expect(sum(mine.map((r) => r.cacheWriteTokens))).toBe(row.cache_write);
      expect(mine.filter((r) => r.errorType !== null).length).toBe(row.errors);
      expect(sum(mine.map((r) => r.costUsd ?? 0))).toBeCloseTo(row.cost, 6);
    }
    expect(new Set(requests.map((r) => r.requestId)).size).toBe(requests.length);
    const rateLimited = requests.filter((r) => r.errorType === 'rate_limit_error');
    expect(rateLimited.length).toBeGreaterThan(0);
    expect(rateLimited.every((r) => r.httpStatus === 429)).toBe(true);
  });

  it('LiteLLM spend and error logs: requests, tokens and spend per team equal SQL', async () => {
    const requests = events.filter((e): e is RequestEvent => e.kind === 'request' && e.source === 'litellm');
    const { rows } = await db.pool.query<{ team: string; n: number; prompt: number; completion: number; spend: number; failed: number }>(`
      SELECT coalesce(team_id, organization_id, 'default') AS team, count(*)::int AS n, sum(prompt_tokens)::int AS prompt,
        sum(completion_tokens)::int AS completion, sum(spend)::float8 AS spend, count(*) FILTER (WHERE status <> 'success')::int AS failed
      FROM "LiteLLM_SpendLogs" GROUP BY 1 ORDER BY 1`);
    for (const row of rows) {
      const mine = requests.filter((r) => r.tenant === row.team);
      expect(mine.length, row.team).toBe(row.n);
      expect(sum(mine.map((r) => r.inputTokens))).toBe(row.prompt);
      expect(sum(mine.map((r) => r.outputTokens))).toBe(row.completion);
      expect(sum(mine.map((r) => r.costUsd ?? 0))).toBeCloseTo(row.spend, 9);
      expect(mine.filter((r) => r.errorType !== null).length).toBe(row.failed);
    }
    // Error logs are details of failed calls (activities), never requests of their own.
    const { rows: errorRows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "LiteLLM_ErrorLogs"');
    expect(errorRows[0]!.n).toBeGreaterThan(0);
    expect(requests.length).toBe(sum(rows.map((r) => r.n)));
    const failures = events.filter((e) => e.kind === 'activity' && e.source === 'litellm' && e.activityType === 'llm_call_failed');
    expect(failures.length).toBe(errorRows[0]!.n);
    const embeddings = requests.filter((r) => r.operation === 'embeddings');
    expect(embeddings.length).toBeGreaterThan(0);
    expect(embeddings.every((r) => r.timeToFirstTokenMs === null)).toBe(true);
  });

  it('Sidekick Forge transcripts, usage and agents equal SQL; limits are the tier quota', async () => {
    const messages = events.filter((e): e is MessageEvent => e.kind === 'message' && e.source === 'sidekick-forge');
    const { rows: t } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM conversation_transcripts');
    expect(messages.length).toBe(t[0]!.n);
    expect(new Set(messages.map((m) => m.tenant))).toEqual(new Set(['Client 0', 'Client 1', 'Client 2', 'Client 3']));

    // The platform's rule (sidekick-forge.truth.test.ts compares with its own function).
    const usage = events.filter((e): e is UsageSnapshot => e.kind === 'usage');
    const { rows: u } = await db.pool.query<{ name: string; voice: number; text: number; chunks: number; tokens_out: string; voice_limit: number }>(`
      SELECT c.name, sum(voice_seconds_used)::int AS voice, sum(text_messages_used)::int AS text, sum(embedding_chunks_used)::int AS chunks,
        sum(llm_output_tokens)::text AS tokens_out, max(coalesce(q.voice_seconds_per_month, 6000)) AS voice_limit
      FROM agent_usage u JOIN clients c ON c.id = u.client_id LEFT JOIN tier_quotas q ON q.tier = coalesce(c.tier::text, 'adventurer')
      WHERE period_start = date_trunc('month', now())::date GROUP BY c.name ORDER BY c.name`);
    expect(u.length).toBe(4);
    for (const row of u) {
      const mine = usage.filter((x) => x.client === row.name);
      const used = (resource: string) => sum(mine.filter((x) => x.resource === resource).map((x) => x.used));
      expect(used('voice_seconds'), row.name).toBe(row.voice);
      expect(used('text_messages')).toBe(row.text);
      expect(used('embedding_chunks')).toBe(row.chunks);
      expect(used('llm_output_tokens')).toBe(Number(row.tokens_out));
      expect(Math.max(...mine.filter((x) => x.resource === 'voice_seconds').map((x) => x.limit))).toBe(row.voice_limit);
    }

    const agents = events.filter((e): e is AgentSnapshot => e.kind === 'agent');
    expect(agents.length).toBe(12);
    expect(agents.filter((a) => !a.enabled).every((a) => a.status === 'offline')).toBe(true);
    const { rows: active } = await db.pool.query<{ n: number }>(
      "SELECT count(DISTINCT (t.agent_id, t.conversation_id))::int AS n FROM conversation_transcripts t JOIN agents a ON a.id = t.agent_id WHERE a.enabled AND t.created_at > now() - interval '5 minutes'",
    );
    expect(active[0]!.n).toBeGreaterThan(0);
    expect(sum(agents.filter((a) => a.enabled).map((a) => a.activeConversations))).toBe(active[0]!.n);
    expect(agents.some((a) => a.status === 'online')).toBe(true);
    expect(agents.some((a) => a.status === 'idle')).toBe(true);
  });

  it('never reads secret columns', () => {
    const text = JSON.stringify(events);
    for (const secret of ['sk-ant-secret-never-read', 'sk-secret-openai', 'lk-secret', 'hashed-key-']) expect(text).not.toContain(secret);
  });
});
