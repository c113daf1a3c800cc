// End to end with real processes: PostgreSQL with the source schemas, the exporter, a real
// Prometheus evaluating the generated rules, a real Alertmanager with the generated routes,
// and the compose stack's webhook sink (scripts/webhook-sink.ts). An error burst pages the critical receiver with the
// tenant; stopping it resolves the page; a quota crossing 80 % reaches the warning receiver
// only. Evaluation and grouping are shortened for the test; the shipped files keep theirs.
import { spawn, type ChildProcess } from 'node:child_process';
import { startWebhookSink, type WebhookSink } from '../../scripts/webhook-sink.ts';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../exporter/src/testing/databases.ts';
import { seedSidekickForge, insertRows, API_REQUEST_COLUMNS, uuidFrom } from '../../exporter/src/embedded/seed.ts';
import { Pipeline } from '../../exporter/src/pipeline/pipeline.ts';
import { MemoryCheckpointStore } from '../../exporter/src/reader/checkpoint-store.ts';
import { MetricsRegistry } from '../../exporter/src/metrics/registry.ts';
import { listen, metricsApp, type HttpServer } from '../../exporter/src/http/server.ts';
import { freePortOnLoopback } from '../../exporter/src/embedded/ports.ts';
import { silentLogger, testConfig } from '../../exporter/src/testing/fixtures.ts';
import { eventually, startPrometheus, type PrometheusServer } from '../../exporter/src/testing/prometheus.ts';
import { MonitoringConfig } from '../config.ts';
import { alertmanagerConfig, prometheusRules } from './render.ts';

interface Notification {
  receiver: string;
  status: 'firing' | 'resolved';
  alerts: { status: string; labels: Record<string, string>; annotations: Record<string, string> }[];
}

describe('paging end to end', () => {
  let db: TestDatabase;
  let pipeline: Pipeline;
  let http: HttpServer;
  let prometheus: PrometheusServer;
  let alertmanager: ChildProcess;
  let receiver: WebhookSink;
  let dir: string;
  // What the sink received, as (receiver path, notification).
  const notifications = {
    all: () => receiver.pages().map((p) => ({ path: `/${p.receiver}`, body: p.body as Notification })),
    find: (match: (n: { path: string; body: Notification }) => boolean) => notifications.all().find(match),
    filter: (match: (n: { path: string; body: Notification }) => boolean) => notifications.all().filter(match),
  };
  let requestNumber = 0;

  const requestRows = (tenant: string, status: number, count: number) =>
    Array.from({ length: count }, () => {
      requestNumber += 1;
      return [
        uuidFrom(`e2e-${requestNumber}`), tenant, new Date(), 'claude-sonnet-4-5-20250929', 'inference', status, false,
        100, status === 200 ? 50 : 0, 150, 0, 0, 300, 1200, status >= 500 ? 'upstream error' : null, 0, null, 'main', 1,
        false, null, 'acct-a', 'hash', null, null, null, null,
      ];
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tw-paging-'));
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge'] });
    await seedSidekickForge(db.pool, { conversations: 20 });
    await db.pool.query('UPDATE agent_usage SET voice_seconds_used = 0, text_messages_used = 0, embedding_chunks_used = 0');

    // The compose stack's webhook sink, standing in for the pager and the chat.
    receiver = await startWebhookSink();
    const hooks = receiver.url;

    // The exporter, polling fast.
    const metrics = new MetricsRegistry();
    const config = testConfig(db.url, {
      sources: [{ type: 'claude-nexus-proxy', pollInterval: '200ms' }, { type: 'sidekick-forge', snapshotInterval: '500ms', pollInterval: '1s' }],
    });
    pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [], store: new MemoryCheckpointStore(), autoSources: false, metrics });
    pipeline.start();
    const exporterPort = await freePortOnLoopback();
    http = await listen(metricsApp(() => metrics.collect(pipeline.statuses(), pipeline.quality.snapshot(), [], pipeline.sinks()), () => ({ ready: true })), `127.0.0.1:${exporterPort}`);

    // Generated rules and routes, with test timings.
    const monitoring = MonitoringConfig.parse({
      evaluationInterval: '1s', forOverride: '0s', groupWait: '1s', groupInterval: '1s', repeatInterval: '1h',
      pagerWebhookUrl: `${hooks}/pager`, chat: { type: 'webhook', url: `${hooks}/chat` },
    });
    mkdirSync(join(dir, 'rules'));
    writeFileSync(join(dir, 'rules', 'tokenwatch.rules.yml'), prometheusRules(monitoring));
    writeFileSync(join(dir, 'alertmanager.yml'), alertmanagerConfig(monitoring));
    const amPort = await freePortOnLoopback();
    alertmanager = spawn('prometheus-alertmanager', [
      `--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'am-data')}`,
      `--web.listen-address=127.0.0.1:${amPort}`, '--cluster.listen-address=', '--log.level=warn',
    ], { stdio: 'ignore' });
    await eventually(() => fetch(`http://127.0.0.1:${amPort}/-/ready`).then((r) => r.ok), 30_000, 'alertmanager ready');
    prometheus = await startPrometheus([{ job: 'tokenwatch', targets: [`127.0.0.1:${exporterPort}`] }], {
      extraConfig: [
        `rule_files: ['${join(dir, 'rules', 'tokenwatch.rules.yml')}']`,
        'alerting:',
        '  alertmanagers:',
        `    - static_configs: [{ targets: ['127.0.0.1:${amPort}'] }]`,
      ].join('\n'),
    });
  });

  afterAll(async () => {
    await prometheus?.stop();
    alertmanager?.kill('SIGTERM');
    await http?.close();
    await pipeline?.close();
    await receiver?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const received = (path: string, alertname: string, status: 'firing' | 'resolved', labels: Record<string, string>) =>
    notifications.find((n) => n.path === path && n.body.alerts.some((a) =>
      a.status === status && a.labels.alertname === alertname && Object.entries(labels).every(([k, v]) => a.labels[k] === v)));

  it('an error burst pages with the tenant, and resolves when the burst stops', async () => {
    // Steady successful traffic for two tenants.
    const traffic = setInterval(() => {
      void insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, [...requestRows('acme.example.com', 200, 10), ...requestRows('globex.example.com', 200, 10)]);
    }, 250);
    try {
      await eventually(async () => ((await prometheus.query('sum(tokenwatch_requests_total{tenant="acme.example.com"})'))[0]?.value ?? 0) > 50, 30_000, 'traffic scraped');
      await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, requestRows('acme.example.com', 500, 150));
      await eventually(async () => received('/pager', 'TokenwatchErrorBudgetBurn', 'firing', { tenant: 'acme.example.com', severity: 'critical' }) !== undefined, 60_000, 'the page');
      const page = received('/pager', 'TokenwatchErrorBudgetBurn', 'firing', { tenant: 'acme.example.com' })!;
      // What an operator of the compose stack reads: GET /pages/<receiver>.
      const listed = (await (await fetch(`${receiver.url}/pages/pager`)).json()) as { receiver: string; body: Notification }[];
      expect(listed.some((p) => p.receiver === 'pager' && p.body.alerts.some((a) => a.labels.alertname === 'TokenwatchErrorBudgetBurn'))).toBe(true);
      const alert = page.body.alerts.find((a) => a.labels.alertname === 'TokenwatchErrorBudgetBurn')!;
      expect(alert.labels).toMatchObject({ source: 'claude-nexus-proxy', tenant: 'acme.example.com', severity: 'critical', component: 'data' });
      expect(alert.annotations.summary).toMatch(/error budget/);
      expect(alert.annotations.description).toMatch(/^Tenant acme\.example\.com \(claude-nexus-proxy\): [\d.]+% of requests failed/);
      expect(alert.annotations.runbook_url).toMatch(/#tokenwatcherrorbudgetburn$/);
      // The other tenant is healthy, and the warning tier of the same alert is inhibited.
      expect(received('/pager', 'TokenwatchErrorBudgetBurn', 'firing', { tenant: 'globex.example.com' })).toBeUndefined();
      expect(received('/chat', 'TokenwatchErrorBudgetBurn', 'firing', { tenant: 'acme.example.com' })).toBeUndefined();

      // The burst stops: plenty of successful requests bring the ratio under the objective.
      await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, requestRows('acme.example.com', 200, 40_000));
      await eventually(async () => received('/pager', 'TokenwatchErrorBudgetBurn', 'resolved', { tenant: 'acme.example.com', severity: 'critical' }) !== undefined, 60_000, 'the resolved notification');
    } finally {
      clearInterval(traffic);
    }
  });

  it('a quota crossing 80 % notifies the warning receiver only', async () => {
    // Client 0 (adventurer tier, 6000 voice seconds): 82 % over its usage rows.
    await db.pool.query(`UPDATE agent_usage SET voice_seconds_used = CASE WHEN agent_id = $1 THEN 4920 ELSE 0 END WHERE client_id = (SELECT client_id FROM agent_usage WHERE agent_id = $1)`, [uuidFrom('agent-0-0')]);
    await eventually(async () => received('/chat', 'TokenwatchQuotaHigh', 'firing', { client: 'Client 0', resource: 'voice_seconds', severity: 'warning' }) !== undefined, 60_000, 'the quota warning');
    const chat = received('/chat', 'TokenwatchQuotaHigh', 'firing', { client: 'Client 0' })!;
    expect(chat.body.alerts.find((a) => a.labels.alertname === 'TokenwatchQuotaHigh')!.annotations.description).toBe('Client Client 0 has used 82% of its voice_seconds quota this month.');
    // Give a wrongly routed page time to arrive, then check there is none.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(notifications.filter((n) => n.path === '/pager' && n.body.alerts.some((a) => a.labels.alertname?.startsWith('TokenwatchQuota')))).toEqual([]);
  });
});
