// PromQL against a real Prometheus that scraped the exporter equals SQL on the source tables:
// requests, tokens by type, cost, error ratio, and p95 latency (within one histogram bucket).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { seedAll } from '../embedded/seed.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { MetricsRegistry } from './registry.ts';
import { DURATION_BUCKETS, METRICS } from './catalog.ts';
import { listen, metricsApp, type HttpServer } from '../http/server.ts';
import { freePortOnLoopback } from '../embedded/ports.ts';
import { eventually, startPrometheus, type PrometheusServer } from '../testing/prometheus.ts';
import { prometheusText } from './prometheus-text.ts';
import { ProcessMetrics } from './process-metrics.ts';
import { VERSION } from '../version.ts';

describe('Prometheus ground truth', () => {
  let db: TestDatabase;
  let http: HttpServer;
  let prometheus: PrometheusServer;
  let pipeline: Pipeline;
  let exposed: string;

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
    await seedAll(db.pool, { requests: 4000, spendLogs: 2000 });
    const metrics = new MetricsRegistry();
    pipeline = await Pipeline.open({ config: testConfig(db.url), logger: silentLogger(), sinks: [], store: new MemoryCheckpointStore(), autoSources: false, metrics });
    await pipeline.backfill();
    const processMetrics = new ProcessMetrics();
    const collect = () => metrics.collect(pipeline.statuses(), pipeline.quality.snapshot(), [], [], { ...processMetrics.sample(), version: VERSION });
    exposed = prometheusText(collect());
    const port = await freePortOnLoopback();
    http = await listen(metricsApp(collect, () => ({ ready: true })), `127.0.0.1:${port}`);
    prometheus = await startPrometheus([{ job: 'tokenwatch', targets: [`127.0.0.1:${port}`] }]);
    await eventually(async () => (await prometheus.query('sum(tokenwatch_requests_total)')).length === 1, 30_000, 'first scrape');
  });
  afterAll(async () => {
    await prometheus?.stop();
    await http?.close();
    await pipeline?.close();
    await db?.drop();
  });

  const byLabel = (rows: { metric: Record<string, string>; value: number }[], label: string) =>
    Object.fromEntries(rows.map((r) => [r.metric[label]!, r.value]));

  it('requests and tokens by type per tenant (Claude Nexus Proxy)', async () => {
    const { rows } = await db.pool.query<{ domain: string; n: number; input: number; output: number; cr: number; cw: number }>(`
      SELECT domain, count(*)::int AS n, sum(input_tokens)::int AS input, sum(output_tokens)::int AS output,
        sum(cache_read_input_tokens)::int AS cr, sum(cache_creation_input_tokens)::int AS cw
      FROM api_requests WHERE request_type = 'inference' GROUP BY domain`);
    const requests = byLabel(await prometheus.query('sum by (tenant) (tokenwatch_requests_total{source="claude-nexus-proxy"})'), 'tenant');
    const tokens = await prometheus.query('sum by (tenant, type) (tokenwatch_tokens_total{source="claude-nexus-proxy"})');
    const tok = (tenant: string, type: string) => tokens.find((t) => t.metric.tenant === tenant && t.metric.type === type)?.value;
    expect(rows.length).toBe(5);
    for (const row of rows) {
      expect(requests[row.domain], row.domain).toBe(row.n);
      expect(tok(row.domain, 'input')).toBe(row.input);
      expect(tok(row.domain, 'output')).toBe(row.output);
      expect(tok(row.domain, 'cache_read')).toBe(row.cr);
      expect(tok(row.domain, 'cache_creation')).toBe(row.cw);
    }
    // The GenAI histogram counts the same tokens.
    const genai = byLabel(await prometheus.query('sum by (tenant) (gen_ai_client_token_usage_sum{gen_ai_token_type="output", gen_ai_provider_name="anthropic"})'), 'tenant');
    for (const row of rows) expect(genai[row.domain]).toBe(row.output);
  });

  it('cost per tenant and model (LiteLLM spend)', async () => {
    const { rows } = await db.pool.query<{ team: string; model: string; spend: number }>(
      'SELECT team_id AS team, model, sum(spend)::float8 AS spend FROM "LiteLLM_SpendLogs" GROUP BY 1, 2',
    );
    const cost = await prometheus.query('sum by (tenant, model) (tokenwatch_cost_usd_total{source="litellm"})');
    expect(rows.length).toBeGreaterThan(5);
    for (const row of rows) {
      const found = cost.find((c) => c.metric.tenant === row.team && c.metric.model === row.model);
      expect(found?.value, `${row.team} ${row.model}`).toBeCloseTo(row.spend, 9);
    }
  });

  it('error ratio per tenant', async () => {
    const { rows } = await db.pool.query<{ domain: string; ratio: number }>(
      "SELECT domain, (count(*) FILTER (WHERE response_status >= 400))::float8 / count(*) AS ratio FROM api_requests WHERE request_type = 'inference' GROUP BY domain",
    );
    const ratio = byLabel(await prometheus.query(
      'sum by (tenant) (tokenwatch_errors_total{source="claude-nexus-proxy"}) / sum by (tenant) (tokenwatch_requests_total{source="claude-nexus-proxy"})',
    ), 'tenant');
    for (const row of rows) expect(ratio[row.domain], row.domain).toBeCloseTo(row.ratio, 12);
  });

  it('p95 latency per tenant and model lies in the histogram bucket of the SQL p95', async () => {
    const { rows } = await db.pool.query<{ domain: string; model: string; p95: number }>(`
      SELECT domain, model, percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms / 1000.0)::float8 AS p95
      FROM api_requests WHERE request_type = 'inference' GROUP BY 1, 2`);
    const p95 = await prometheus.query(
      'histogram_quantile(0.95, sum by (tenant, gen_ai_request_model, le) (gen_ai_client_operation_duration_seconds_bucket{gen_ai_provider_name="anthropic"}))',
    );
    expect(rows.length).toBe(20);
    for (const row of rows) {
      const estimate = p95.find((p) => p.metric.tenant === row.domain && p.metric.gen_ai_request_model === row.model)!.value;
      const upper = DURATION_BUCKETS.find((b) => row.p95 <= b) ?? Infinity;
      const lower = [...DURATION_BUCKETS].reverse().find((b) => b < row.p95) ?? 0;
      expect(estimate, `${row.domain} ${row.model}: SQL p95 ${row.p95}`).toBeGreaterThanOrEqual(lower);
      expect(estimate).toBeLessThanOrEqual(upper);
    }
  });

  it('quota utilisation and agent status gauges equal SQL', async () => {
    // The platform's rule: the sum over the client's rows against its tier's quota.
    const { rows } = await db.pool.query<{ name: string; ratio: number }>(`
      SELECT c.name, sum(u.voice_seconds_used)::float8 / max(coalesce(q.voice_seconds_per_month, 6000)) AS ratio
      FROM agent_usage u JOIN clients c ON c.id = u.client_id LEFT JOIN tier_quotas q ON q.tier = coalesce(c.tier::text, 'adventurer') GROUP BY c.name`);
    const ratio = byLabel(await prometheus.query('tokenwatch_quota_utilisation_ratio{resource="voice_seconds"}'), 'client');
    expect(rows.length).toBe(4);
    for (const row of rows) expect(ratio[row.name], row.name).toBeCloseTo(row.ratio, 12);
    const { rows: disabled } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM agents WHERE NOT enabled');
    expect((await prometheus.query('sum(tokenwatch_agent_status{status="offline"})'))[0]!.value).toBe(disabled[0]!.n);
  });

  it('the metric table of docs/metrics.md lists exactly the catalog, and /metrics exposes only catalog metrics', () => {
    const readme = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('<!-- metrics-catalog:start -->'), readme.indexOf('<!-- metrics-catalog:end -->'));
    const documented = [...section.matchAll(/^\| `([a-z0-9_:]+)` \|/gm)].map((m) => m[1]).sort();
    const catalog = Object.values(METRICS).map((m) => m.name).sort();
    expect(documented).toEqual(catalog);
    const names = new Set([...exposed.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    for (const name of names) expect(catalog, name).toContain(name);
    // Everything shows up but the overflow and shortened-label counters, the bad-row counter (no bad rows here), sinks and probes (none
    // configured), the event-loop delay (its first 30 s window has not ended), reconciliation (no event store here), and
    // requests without a price (every model of this data has one), and replication (these sources are polled).
    const expectedAbsent = ['nodejs_eventloop_lag_p99_seconds',
      'tokenwatch_reconcile_missing_rows', 'tokenwatch_reconcile_extra_rows', 'tokenwatch_reconcile_rejected_rows', 'tokenwatch_reconcile_last_run_timestamp_seconds',
      'tokenwatch_reconcile_days', 'tokenwatch_reconcile_delivered_rows_total',
      'tokenwatch_sink_up', 'tokenwatch_sink_write_failures_total', 'tokenwatch_sink_rows_rejected_total', 'tokenwatch_metric_series_overflow_total', 'tokenwatch_metric_label_values_shortened_total',
      'tokenwatch_source_rows_invalid_total', 'tokenwatch_probe_up', 'tokenwatch_probe_duration_seconds', 'tokenwatch_cost_unknown_requests_total',
      'tokenwatch_source_rows_deleted_total', 'tokenwatch_source_xmin_scans_total', 'tokenwatch_replication_slot_lag_bytes', 'tokenwatch_replication_slot_retained_bytes', 'tokenwatch_replication_last_message_timestamp_seconds',
      'tokenwatch_replication_fallback',
    ];
    expect(catalog.filter((n) => !names.has(n)).sort()).toEqual(expectedAbsent.sort());
  });
});
