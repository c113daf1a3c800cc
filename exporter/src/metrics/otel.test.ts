// The OTLP push carries the same families as /metrics: a real OTLP/HTTP exporter posting to a
// receiver in the test.
import { createServer } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { MetricsRegistry } from './registry.ts';
import { startOtlpPush } from './otel.ts';
import type { RequestEvent } from '../model/events.ts';

interface OtlpMetric { name: string; sum?: { dataPoints: { asDouble?: number; attributes: { key: string; value: { stringValue?: string } }[] }[]; isMonotonic: boolean }; histogram?: { dataPoints: { count: string | number; explicitBounds: number[] }[] } }

describe('OTLP push', () => {
  const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  afterAll(() => {
    if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
  });

  it('pushes counters and GenAI histograms with their semantic-convention names', async () => {
    const bodies: unknown[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        if (req.url === '/v1/metrics') bodies.push(JSON.parse(body));
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const registry = new MetricsRegistry();
    const event: RequestEvent = {
      kind: 'request', source: 'litellm', tenant: 'team-a', requestId: 'r1', conversationId: null, branchId: null, parentRequestId: null,
      parentTaskRequestId: null, isSubtask: false, account: null, user: null, model: 'gpt-4o', provider: 'openai', operation: 'chat',
      httpStatus: 200, errorType: null, inputTokens: 12, outputTokens: 34, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0.5, cacheWrite1hTokens: 0, webSearchRequests: 0, serviceTier: null, costEstimateUsd: null, pricedAs: null,
      durationMs: 800, timeToFirstTokenMs: null, toolCalls: 0, streaming: false, rateLimitStatus: null, startedAt: new Date().toISOString(), endedAt: null,
    };
    registry.recordStream('litellm/LiteLLM_SpendLogs', [event, { ...event, requestId: 'r2' }]);
    registry.committed('litellm/LiteLLM_SpendLogs', registry.saveStream('litellm/LiteLLM_SpendLogs'));
    const provider = startOtlpPush(() => registry.collect([], [], []), { intervalMs: 200, version: 'test' });
    for (let i = 0; i < 50 && bodies.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    await provider.shutdown();
    server.close();
    expect(bodies.length).toBeGreaterThan(0);
    const metrics = (bodies[0] as { resourceMetrics: { scopeMetrics: { metrics: OtlpMetric[] }[] }[] }).resourceMetrics[0]!.scopeMetrics[0]!.metrics;
    const requests = metrics.find((m) => m.name === 'tokenwatch_requests')!;
    expect(requests.sum!.isMonotonic).toBe(true);
    const ok = requests.sum!.dataPoints.find((d) => d.attributes.some((a) => a.key === 'status_class' && a.value.stringValue === '2xx'))!;
    expect(ok.asDouble).toBe(2);
    expect(ok.attributes).toContainEqual({ key: 'tenant', value: { stringValue: 'team-a' } });
    const tokens = metrics.find((m) => m.name === 'gen_ai.client.token.usage')!;
    expect(tokens.histogram!.dataPoints.map((d) => Number(d.count))).toEqual([2, 2]);
    expect(tokens.histogram!.dataPoints[0]!.explicitBounds[0]).toBe(1);
  });
});
