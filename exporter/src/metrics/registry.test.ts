import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from './registry.ts';
import { prometheusText } from './prometheus-text.ts';
import type { RequestEvent } from '../model/events.ts';

function request(overrides: Partial<RequestEvent> = {}): RequestEvent {
  return {
    kind: 'request', source: 'claude-nexus-proxy', tenant: 'acme', requestId: 'r', conversationId: null, branchId: null,
    parentRequestId: null, parentTaskRequestId: null, isSubtask: false, account: null, user: null, model: 'claude-sonnet-4-5',
    provider: 'anthropic', operation: 'chat', httpStatus: 200, errorType: null, inputTokens: 100, outputTokens: 50,
    cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0.001, cacheWrite1hTokens: 0, webSearchRequests: 0, serviceTier: null, costEstimateUsd: null, pricedAs: null, durationMs: 1500, timeToFirstTokenMs: 300, toolCalls: 0,
    streaming: true, rateLimitStatus: null, startedAt: new Date().toISOString(), endedAt: null, ...overrides,
  };
}

function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

/** Records a page and makes it visible, as the durable checkpoint after a page does. */
function recordCommitted(registry: MetricsRegistry, events: Parameters<MetricsRegistry['recordStream']>[1]): void {
  registry.recordStream('s/t', events);
  registry.committed('s/t', registry.saveStream('s/t'));
}

describe('MetricsRegistry', () => {
  it('renders counters and cumulative histogram buckets in Prometheus text format', () => {
    const registry = new MetricsRegistry();
    recordCommitted(registry, [request({ durationMs: 15 }), request({ durationMs: 1500, httpStatus: 529, errorType: 'overloaded_error' })]);
    const text = prometheusText(registry.collect([], [], []));
    expect(sample(text, 'tokenwatch_requests_total{source="claude-nexus-proxy",tenant="acme",model="claude-sonnet-4-5",status_class="2xx"}')).toBe(1);
    expect(sample(text, 'tokenwatch_requests_total{source="claude-nexus-proxy",tenant="acme",model="claude-sonnet-4-5",status_class="5xx"}')).toBe(1);
    expect(sample(text, 'tokenwatch_tokens_total{source="claude-nexus-proxy",tenant="acme",model="claude-sonnet-4-5",type="input"}')).toBe(200);
    const ok = 'gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4-5",tenant="acme",error_type=""';
    expect(sample(text, `${ok},le="0.01"}`)).toBe(0);
    expect(sample(text, `${ok},le="0.02"}`)).toBe(1);
    expect(sample(text, `${ok},le="+Inf"}`)).toBe(1);
    const failed = ok.replace('error_type=""', 'error_type="overloaded_error"');
    expect(sample(text, `${failed},le="1.28"}`)).toBe(0);
    expect(sample(text, `${failed},le="2.56"}`)).toBe(1);
    expect(text).toContain('# TYPE gen_ai_client_token_usage histogram');
  });

  it('shows only checkpointed increments, restores counters from a saved state and rolls back what a failed poll recorded', () => {
    const first = new MetricsRegistry();
    const line = 'tokenwatch_requests_total{source="claude-nexus-proxy",tenant="acme",model="claude-sonnet-4-5",status_class="2xx"}';
    first.recordStream('s/t', [request(), request()]);
    // Not checkpointed yet (a crash now would restore less than /metrics had shown): 0.
    expect(sample(prometheusText(first.collect([], [], [])), line)).toBe(0);
    const saved = first.saveStream('s/t');
    first.committed('s/t', saved);
    expect(sample(prometheusText(first.collect([], [], [])), line)).toBe(2);
    first.recordStream('s/t', [request()]);
    expect(sample(prometheusText(first.collect([], [], [])), line)).toBe(2);
    first.rollbackStream('s/t');
    expect(sample(prometheusText(first.collect([], [], [])), line)).toBe(2);
    first.recordStream('s/t', [request()]);
    first.committed('s/t', first.saveStream('s/t'));
    expect(sample(prometheusText(first.collect([], [], [])), line)).toBe(3);

    const second = new MetricsRegistry();
    second.restoreStream('s/t', JSON.parse(JSON.stringify(saved)));
    expect(sample(prometheusText(second.collect([], [], [])), line)).toBe(2);
    recordCommitted(second, [request()]);
    expect(sample(prometheusText(second.collect([], [], [])), line)).toBe(3);
    expect(sample(prometheusText(second.collect([], [], [])), 'gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4-5",tenant="acme",gen_ai_token_type="input"}')).toBe(3);
  });

  it('bounds cardinality: tenants past the cap fold into "other" and are counted', () => {
    const registry = new MetricsRegistry({ limits: { maxSeriesPerMetric: 100_000, maxValuesPerLabel: { tenant: 10 }, allow: { model: ['claude-sonnet-4-5'] } } });
    const events = Array.from({ length: 1000 }, (_, i) => request({ tenant: `tenant-${i}`, model: i % 2 ? 'claude-sonnet-4-5' : `custom-${i}` }));
    recordCommitted(registry, events);
    const text = prometheusText(registry.collect([], [], []));
    const requestLines = text.split('\n').filter((l) => l.startsWith('tokenwatch_requests_total{'));
    const tenants = new Set(requestLines.map((l) => /tenant="([^"]*)"/.exec(l)![1]));
    expect(tenants.size).toBe(11);
    expect(tenants.has('other')).toBe(true);
    expect(requestLines.reduce((n, l) => n + Number(l.split(' ')[1]), 0)).toBe(1000);
    expect(sample(text, 'tokenwatch_metric_series_overflow_total{metric="tokenwatch_requests_total",label="tenant"}')).toBe(990);
    expect(sample(text, 'tokenwatch_metric_series_overflow_total{metric="tokenwatch_requests_total",label="model"}')).toBe(500);
  });

  it('caps the series of one metric', () => {
    const registry = new MetricsRegistry({ limits: { maxSeriesPerMetric: 50, maxValuesPerLabel: {}, allow: {} } });
    recordCommitted(registry, Array.from({ length: 500 }, (_, i) => request({ tenant: `t${i}` })));
    const lines = prometheusText(registry.collect([], [], [])).split('\n').filter((l) => l.startsWith('tokenwatch_requests_total{'));
    // 50 series admitted (plus the zero-valued status classes of admitted tenants), the rest in "other".
    expect(lines.length).toBeLessThanOrEqual(50 + 4 * 3);
    expect(lines.reduce((n, l) => n + Number(l.split(' ')[1]), 0)).toBe(500);
  });

  it('computes client quota totals, limits and utilisation; 0 means unlimited', () => {
    const registry = new MetricsRegistry();
    const at = new Date().toISOString();
    const usage = (agent: string, resource: 'voice_seconds' | 'text_messages', used: number, limit: number) =>
      ({ kind: 'usage', source: 'sidekick-forge', tenant: 'c1', client: 'c1', agent, resource, used, limit, periodStart: '2026-11-01', observedAt: at }) as const;
    registry.recordSnapshot('s/agent_usage', [usage('a', 'voice_seconds', 3000, 6000), usage('b', 'voice_seconds', 1800, 6000), usage('a', 'text_messages', 5, 0)]);
    const text = prometheusText(registry.collect([], [], []));
    expect(sample(text, 'tokenwatch_quota_used{source="sidekick-forge",client="c1",agent="",resource="voice_seconds"}')).toBe(4800);
    expect(sample(text, 'tokenwatch_quota_limit{source="sidekick-forge",client="c1",resource="voice_seconds"}')).toBe(6000);
    expect(sample(text, 'tokenwatch_quota_utilisation_ratio{source="sidekick-forge",client="c1",resource="voice_seconds"}')).toBe(0.8);
    expect(sample(text, 'tokenwatch_quota_limit{source="sidekick-forge",client="c1",resource="text_messages"}')).toBeUndefined();
  });
});
