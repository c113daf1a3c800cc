// Claude Nexus Proxy's first schema version (migration 000, embedded/ddl/claude-nexus-proxy-v0.sql):
// no conversation, subtask, account, message-hash or parent columns, and no first_token_ms.
// tokenwatch reads it with no configuration: `check` passes and names the columns this
// version lacks, and what a backfill puts on /metrics and in ClickHouse equals SQL on the
// source, rows written as the proxy writes them (INSERT at the request, UPDATE with the
// response).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { variantDdl } from '../embedded/ddl.ts';
import { checkSource } from '../cli/check.ts';
import { Pricing } from '../pricing/pricing.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import type { NamedSource } from './adapter.ts';

const DB = 'tw_cnp_v0';
const MODELS = ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001'];

describe('Claude Nexus Proxy, schema version 0', () => {
  let db: TestDatabase;
  let stateDir: string;
  let store: EventStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(variantDdl('claude-nexus-proxy-v0'));
    stateDir = mkdtempSync(join(tmpdir(), 'tw-cnp-v0-'));
    for (let i = 0; i < 60; i++) {
      const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const at = new Date(Date.now() - (90 - i) * 60_000).toISOString();
      await db.pool.query(
        `INSERT INTO api_requests (request_id, timestamp, domain, method, path, headers, body, request_type, model)
         VALUES ($1, $2, $3, 'POST', '/v1/messages', '{"x-api-key": "sk-ant-secret"}', '{"messages": []}', 'inference', $4)`,
        [id, at, i % 3 === 0 ? 'beta.example.com' : 'acme.example.com', MODELS[i % 2]],
      );
      const failed = i % 10 === 7;
      const write = i % 4 === 0 ? 2000 : 0;
      const usage = {
        input_tokens: 100 + i, output_tokens: failed ? 0 : 10 * i, cache_read_input_tokens: i % 5 === 0 ? 5000 : 0, cache_creation_input_tokens: write,
        cache_creation: { ephemeral_5m_input_tokens: i % 8 === 0 ? 0 : write, ephemeral_1h_input_tokens: i % 8 === 0 ? write : 0 },
      };
      await db.pool.query(
        `UPDATE api_requests SET response_status = $2, response_body = $3, input_tokens = $4, output_tokens = $5, cache_read_input_tokens = $6,
           cache_creation_input_tokens = $7, usage_data = $8, duration_ms = $9, completed_at = now() WHERE request_id = $1`,
        [id, failed ? 529 : 200, JSON.stringify(failed ? { type: 'error', error: { type: 'overloaded_error' } } : { content: [{ type: 'text', text: 'ok' }] }),
          usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens, write, JSON.stringify(usage), 800 + i],
      );
    }
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('passes check with no configuration, naming the columns this version does not have', async () => {
    const config = testConfig(db.url, { sources: [{ type: 'claude-nexus-proxy' }] });
    const lines = await checkSource(config.sources[0] as NamedSource, new Pricing());
    expect(lines.filter((l) => l.ok === false)).toEqual([]);
    const older = lines.find((l) => l.text.startsWith('an older schema version'));
    expect(older?.text).toContain('conversation_id');
    expect(older?.text).toContain('first_token_ms');
    expect(older?.text).not.toContain('usage_data');
    // A column a stream cannot do without is named as such, not as a connection failure.
    const broken = testConfig(db.url, { sources: [{ type: 'claude-nexus-proxy', columns: { request_id: null } }] });
    const failed = (await checkSource(broken.sources[0] as NamedSource, new Pricing())).filter((l) => l.ok === false);
    expect(failed.map((l) => l.text)).toEqual(['column request_id is required by claude-nexus-proxy and cannot be marked absent']);
  });

  it('a backfill equals SQL on the source: requests, errors, tokens and cost per tenant, on /metrics and in ClickHouse', async () => {
    const config = testConfig(db.url, { stateDir, sources: [{ type: 'claude-nexus-proxy' }], clickhouse: { database: DB } });
    store = await openStore(config);
    await store.command(`DROP DATABASE IF EXISTS ${DB} SYNC`);
    await store.migrate();
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false, metrics });
    await pipeline.backfill();
    const text = prometheusText(metrics.collect(pipeline.statuses(), pipeline.quality.snapshot(), []));
    expect(pipeline.quality.snapshot()).toEqual([]);
    await pipeline.close();

    const pricing = new Pricing();
    const { rows } = await db.pool.query<{ domain: string; model: string; timestamp: Date; input_tokens: number; output_tokens: number; cache_read_input_tokens: number; cache_creation_input_tokens: number; usage_data: { cache_creation: { ephemeral_1h_input_tokens: number } }; response_status: number }>(
      'SELECT * FROM api_requests',
    );
    for (const tenant of ['acme.example.com', 'beta.example.com']) {
      const mine = rows.filter((r) => r.domain === tenant);
      const cost = mine.reduce((sum, r) => sum + pricing.cost(r.model, {
        inputTokens: r.input_tokens, outputTokens: r.output_tokens, cacheReadTokens: r.cache_read_input_tokens, cacheWriteTokens: r.cache_creation_input_tokens,
        cacheWrite1hTokens: r.usage_data.cache_creation.ephemeral_1h_input_tokens,
      }, { at: r.timestamp, tenant })!, 0);
      const input = mine.reduce((n, r) => n + r.input_tokens, 0);
      const errors = mine.filter((r) => r.response_status >= 500).length;
      const t = `tenant="${tenant}"`;
      expect(sumSamples(text, 'tokenwatch_requests_total', t)).toBe(mine.length);
      expect(sumSamples(text, 'tokenwatch_requests_total', t, 'status_class="5xx"')).toBe(errors);
      expect(sumSamples(text, 'tokenwatch_errors_total', t, 'error_type="overloaded_error"')).toBe(errors);
      expect(sumSamples(text, 'tokenwatch_tokens_total', t, 'type="input"')).toBe(input);
      expect(sumSamples(text, 'tokenwatch_cost_usd_total', t)).toBeCloseTo(cost, 9);
      const [ch] = await store.query<{ n: string; input: string; cost: string }>(
        `SELECT toString(count()) AS n, toString(sum(input_tokens)) AS input, toString(sum(cost_usd)) AS cost FROM ${DB}.requests FINAL WHERE tenant = {tenant:String}`, { tenant },
      );
      expect(Number(ch!.n)).toBe(mine.length);
      expect(Number(ch!.input)).toBe(input);
      expect(Number(ch!.cost)).toBeCloseTo(cost, 9);
    }
    expect(rows.some((r) => r.usage_data.cache_creation.ephemeral_1h_input_tokens > 0)).toBe(true);
  });
});
