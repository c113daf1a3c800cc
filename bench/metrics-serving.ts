// Benchmark: serving /metrics with 10,000, 50,000 and 100,000 series, tokenwatch against
// prom-client serving the same series (the baseline), with and without gzip (prom-client's
// output gzipped the same way, fastest level), and the stock OpenTelemetry Prometheus exporter
// for reference. Median of 20 scrapes each, interleaved, in one run.
//   npm run bench -- metrics      (BENCH_SERIES=10000,50000,100000)
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { constants, gzipSync } from 'node:zlib';
import client from 'prom-client';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MetricsRegistry } from '../exporter/src/metrics/registry.ts';
import { listen, metricsApp } from '../exporter/src/http/server.ts';
import type { RequestEvent } from '../exporter/src/model/events.ts';
import type { BenchReport } from './report.ts';

const MODELS = 10;
const STATUS = ['2xx', '4xx', '5xx', 'unknown'];
const TYPES = ['input', 'output', 'cache_read', 'cache_creation'];
const SCRAPES = 20;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * One scrape by curl, in its own process (so that reading a 13 MB body does not count against
 * the server in this process's event loop): curl's total time and the bytes on the wire.
 */
async function scrape(url: string, gzip: boolean): Promise<{ ms: number; bytes: number }> {
  const args = ['-s', '-o', '/dev/null', '-w', '%{time_total} %{size_download}', '-H', `Accept-Encoding: ${gzip ? 'gzip' : 'identity'}`, url];
  const out = await new Promise<string>((resolve, reject) => {
    let text = '';
    const child = spawn('curl', args);
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`curl exited with ${code}`))));
  });
  const [seconds, bytes] = out.trim().split(' ').map(Number);
  return { ms: seconds! * 1000, bytes: bytes! };
}

function listenServer(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

export async function runMetricsBench(report: BenchReport): Promise<void> {
  for (const series of (process.env.BENCH_SERIES ?? '10000,50000,100000').split(',').map(Number)) await serveSeries(report, series);
}

async function serveSeries(report: BenchReport, wantedSeries: number): Promise<void> {
  // requests_total (tenant × model × status) + tokens_total (tenant × model × type): 80 series per tenant.
  const TENANTS = Math.round(wantedSeries / (MODELS * (STATUS.length + TYPES.length)));
  const registry = new MetricsRegistry({ limits: { maxSeriesPerMetric: 1_000_000, maxValuesPerLabel: {}, allow: {} } });
  const base: Omit<RequestEvent, 'tenant' | 'model' | 'httpStatus'> = {
    kind: 'request', source: 'claude-nexus-proxy', requestId: 'r', conversationId: null, branchId: null, parentRequestId: null,
    parentTaskRequestId: null, isSubtask: false, account: null, user: null, provider: 'anthropic', operation: 'chat', errorType: null,
    inputTokens: 10, outputTokens: 10, cacheReadTokens: 1, cacheWriteTokens: 1, costUsd: null, cacheWrite1hTokens: 0, webSearchRequests: 0, serviceTier: null, costEstimateUsd: null, pricedAs: null, durationMs: null, timeToFirstTokenMs: null,
    toolCalls: 0, streaming: false, rateLimitStatus: null, startedAt: new Date().toISOString(), endedAt: null,
  };
  const statusCodes = [200, 429, 500, null];
  for (let t = 0; t < TENANTS; t++) {
    for (let m = 0; m < MODELS; m++) {
      registry.recordStream('bench/t', statusCodes.map((httpStatus) => ({ ...base, tenant: `tenant-${t}.example.com`, model: `claude-model-${m}`, httpStatus })));
    }
  }
  registry.committed('bench/t', registry.saveStream('bench/t'));
  // Only the two request counters (plus cost, which the registry records with them) are compared.
  const collect = () => registry.collect([], [], []).filter((f) => f.def.name === 'tokenwatch_requests_total' || f.def.name === 'tokenwatch_tokens_total');
  const ours = await listen(metricsApp(collect, () => ({ ready: true })), '127.0.0.1:0');
  const seriesCount = collect().reduce((n, f) => n + f.series.size, 0);

  // prom-client with the same two counters and the same series.
  const promRegistry = new client.Registry();
  const requests = new client.Counter({ name: 'tokenwatch_requests_total', help: 'requests', labelNames: ['source', 'tenant', 'model', 'status_class'], registers: [promRegistry] });
  const tokens = new client.Counter({ name: 'tokenwatch_tokens_total', help: 'tokens', labelNames: ['source', 'tenant', 'model', 'type'], registers: [promRegistry] });
  for (let t = 0; t < TENANTS; t++) for (let m = 0; m < MODELS; m++) {
    const labels = { source: 'claude-nexus-proxy', tenant: `tenant-${t}.example.com`, model: `claude-model-${m}` };
    for (const status_class of STATUS) requests.inc({ ...labels, status_class }, 1);
    for (const type of TYPES) tokens.inc({ ...labels, type }, 40);
  }
  const promServer = createServer(async (req, res) => {
    const text = await promRegistry.metrics();
    const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
    res.writeHead(200, { 'Content-Type': promRegistry.contentType, ...(gzip ? { 'Content-Encoding': 'gzip' } : {}) });
    res.end(gzip ? gzipSync(text, { level: constants.Z_BEST_SPEED }) : text);
  });
  const promPort = await listenServer(promServer);

  // The stock OpenTelemetry exporter with its defaults, same series through SDK counters.
  const otelExporter = new PrometheusExporter({ preventServerStart: true });
  // Raise the SDK's default cardinality limit (2,000 per instrument) so it serves every series.
  const provider = new MeterProvider({ readers: [otelExporter], views: [{ instrumentName: '*', aggregationCardinalityLimit: 1_000_000 }] });
  const meter = provider.getMeter('bench');
  const otelRequests = meter.createCounter('tokenwatch_requests');
  const otelTokens = meter.createCounter('tokenwatch_tokens');
  for (let t = 0; t < TENANTS; t++) for (let m = 0; m < MODELS; m++) {
    const labels = { source: 'claude-nexus-proxy', tenant: `tenant-${t}.example.com`, model: `claude-model-${m}` };
    for (const status_class of STATUS) otelRequests.add(1, { ...labels, status_class });
    for (const type of TYPES) otelTokens.add(40, { ...labels, type });
  }
  const otelServer = createServer((req, res) => otelExporter.getMetricsRequestHandler(req, res));
  const otelPort = await listenServer(otelServer);

  const targets = {
    tokenwatch: `http://${ours.address}/metrics`,
    'prom-client': `http://127.0.0.1:${promPort}/metrics`,
    'otel-default': `http://127.0.0.1:${otelPort}/metrics`,
  };
  const times: Record<string, number[]> = { tokenwatch: [], 'tokenwatch+gzip': [], 'prom-client': [], 'prom-client+gzip': [], 'otel-default': [] };
  const bytes: Record<string, number> = {};
  for (let i = 0; i < 3; i++) for (const url of Object.values(targets)) await scrape(url, false); // warm-up
  for (let i = 0; i < SCRAPES; i++) {
    for (const [name, url] of Object.entries(targets)) {
      const r = await scrape(url, false);
      times[name]!.push(r.ms);
      bytes[name] = r.bytes;
    }
    for (const name of ['tokenwatch', 'prom-client'] as const) {
      const gz = await scrape(targets[name], true);
      times[`${name}+gzip`]!.push(gz.ms);
      bytes[`${name}+gzip`] = gz.bytes;
    }
  }
  const baseline = median(times['prom-client']!);
  console.log(`\n/metrics serving, ${seriesCount} series, median of ${SCRAPES} scrapes (interleaved)`);
  console.log('server            median ms   bytes       ratio vs prom-client');
  for (const [name, values] of Object.entries(times)) {
    console.log(`${name.padEnd(17)} ${median(values).toFixed(1).padStart(9)}   ${String(bytes[name]).padStart(9)}   ${(median(values) / baseline).toFixed(2)}`);
  }
  for (const gzip of [false, true]) {
    const ours = median(times[gzip ? 'tokenwatch+gzip' : 'tokenwatch']!);
    const theirs = median(times[gzip ? 'prom-client+gzip' : 'prom-client']!);
    report.add({ bench: 'metrics', name: `/metrics with ${seriesCount} series${gzip ? ', gzip' : ''}, median of ${SCRAPES} scrapes`, value: ours, unit: 'ms',
      baseline: { name: `prom-client${gzip ? ', gzip' : ''}`, value: theirs }, ratio: ours / theirs, target: '≤ 1.0', met: ours / theirs <= 1 });
  }
  await ours.close();
  promServer.close();
  otelServer.close();
  await provider.shutdown();
}
