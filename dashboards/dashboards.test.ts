// Dashboards: structure (ids, refIds, layout, variables, datasources, units, descriptions,
// schema fields), and every panel query executed: PromQL against a real Prometheus that
// scraped the exporter on seeded data with the recording rules loaded, ClickHouse SQL with
// Grafana's macros expanded against the embedded engine on seeded data.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { MonitoringConfig } from './config.ts';
import { dashboards } from './index.ts';
import { expandMacros } from './lib/macros.ts';
import { prometheusRules } from './alerts/render.ts';
import { createTestDatabase, type TestDatabase } from '../exporter/src/testing/databases.ts';
import { API_REQUEST_COLUMNS, apiRequestRows, insertRows, seedAll } from '../exporter/src/embedded/seed.ts';
import { Pipeline } from '../exporter/src/pipeline/pipeline.ts';
import { MemoryCheckpointStore } from '../exporter/src/reader/checkpoint-store.ts';
import { MetricsRegistry } from '../exporter/src/metrics/registry.ts';
import { ProbeRunner, postgresProbe } from '../exporter/src/metrics/probes.ts';
import { listen, metricsApp, type HttpServer } from '../exporter/src/http/server.ts';
import { freePortOnLoopback } from '../exporter/src/embedded/ports.ts';
import { silentLogger, testConfig } from '../exporter/src/testing/fixtures.ts';
import { eventually, startPrometheus, type PrometheusServer } from '../exporter/src/testing/prometheus.ts';
import { openStore, type EventStore } from '../exporter/src/store/clickhouse.ts';
import { ClickHouseSink } from '../exporter/src/sinks/clickhouse-sink.ts';
import { MemorySink } from '../exporter/src/sinks/memory-sink.ts';

const ROOT = new URL('../', import.meta.url).pathname;
const defaults = MonitoringConfig.parse({});
const built = dashboards(defaults).map((d) => ({ folder: d.folder, json: JSON.parse(JSON.stringify(d.build())) as Record<string, unknown> }));

interface PanelJson {
  id?: number;
  type: string;
  title?: string;
  description?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { uid?: string; type?: string };
  targets?: Record<string, unknown>[];
  fieldConfig?: { defaults?: { unit?: string; links?: unknown }; overrides?: { properties: { id: string; value: unknown }[] }[] };
}

const panelsOf = (d: Record<string, unknown>) => d.panels as PanelJson[];

/** Field names of an interface in the SDK's generated types (Grafana's dashboard schema). */
function schemaFields(name: string): Set<string> {
  const text = readFileSync(join(ROOT, 'node_modules/@grafana/grafana-foundation-sdk/dist/dashboard/types.gen.d.ts'), 'utf8');
  const body = new RegExp(`export interface ${name} \\{([\\s\\S]*?)\\n\\}`).exec(text)![1]!;
  return new Set([...body.matchAll(/^ {4}"?([A-Za-z_][\w]*)"?\??:/gm)].map((m) => m[1]!));
}

function variablesUsed(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(/\$\{([A-Za-z_]\w*)(?::[a-z]+)?\}|\$([A-Za-z_]\w*)/g)) {
    const name = m[1] ?? m[2]!;
    if (!name.startsWith('__')) names.add(name);
  }
  return [...names];
}

describe('dashboards: structure', () => {
  it('every dashboard is provisioned and the committed JSON is fresh', () => {
    for (const { folder, json } of built) {
      const committed = readFileSync(join(ROOT, 'provisioning/grafana/dashboards/tokenwatch', folder, `${String(json.uid)}.json`), 'utf8');
      expect(committed, `${String(json.uid)} is stale: npm run generate`).toBe(`${JSON.stringify(json, null, 2)}\n`);
    }
  });

  it('has stable unique panel ids, unique refIds and a layout without overlaps', () => {
    for (const { json } of built) {
      const panels = panelsOf(json);
      const ids = panels.map((p) => p.id);
      expect(ids.every((id) => typeof id === 'number')).toBe(true);
      expect(new Set(ids).size, String(json.uid)).toBe(ids.length);
      const cells = new Set<string>();
      for (const p of panels) {
        const { x, y, w, h } = p.gridPos!;
        expect(x + w, `${p.title} fits 24 columns`).toBeLessThanOrEqual(24);
        for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
          const cell = `${i},${j}`;
          expect(cells.has(cell), `${String(json.uid)}: ${p.title} overlaps at ${cell}`).toBe(false);
          cells.add(cell);
        }
        const refIds = (p.targets ?? []).map((t) => t.refId);
        expect(new Set(refIds).size, `${p.title} refIds`).toBe(refIds.length);
        expect(refIds.every((r) => typeof r === 'string' && r.length > 0)).toBe(true);
      }
    }
  });

  it('every panel has a title, a description and a unit; every variable and datasource referenced exists', () => {
    const provisioned = parse(readFileSync(join(ROOT, 'provisioning/grafana/datasources/tokenwatch.yml'), 'utf8')) as { datasources: { uid: string; type: string }[] };
    const typeOfUid = new Map(provisioned.datasources.map((d) => [d.uid, d.type]));
    for (const { json } of built) {
      type VariableJson = { name: string; type: string; query?: unknown; current?: { value?: string }; datasource?: { uid: string; type?: string } };
      const list = (json.templating as { list?: VariableJson[] }).list ?? [];
      const variables = new Map(list.map((v) => [v.name, v]));
      // A datasource is named by a datasource variable whose starting value is a provisioned
      // datasource of the same type (so the imported JSON can be pointed elsewhere).
      const resolves = (ref: { uid?: string; type?: string } | undefined, where: string) => {
        const variable = /^\$\{(\w+)\}$/.exec(ref?.uid ?? '')?.[1];
        expect(variable, `${where}: datasource ${ref?.uid} is a variable`).toBeDefined();
        const v = variables.get(variable!);
        expect(v?.type, `${where}: $${variable} is a datasource variable`).toBe('datasource');
        expect(typeOfUid.get(v!.current!.value!), `${where}: $${variable} starts on a provisioned datasource`).toBe(ref!.type);
        expect(v!.query).toBe(ref!.type);
      };
      for (const v of list) if (v.datasource) resolves(v.datasource, `variable ${v.name}`);
      for (const p of panelsOf(json).filter((p) => p.type !== 'row')) {
        expect(p.title, String(json.uid)).toBeTruthy();
        expect(p.description?.length ?? 0, `${p.title} description`).toBeGreaterThan(30);
        expect(p.fieldConfig?.defaults?.unit, `${p.title} unit`).toBeTruthy();
        resolves(p.datasource as { uid: string; type: string }, p.title!);
        for (const t of p.targets ?? []) {
          resolves(t.datasource as { uid: string; type: string }, p.title!);
          for (const name of variablesUsed(String(t.expr ?? t.rawSql ?? ''))) expect(variables.has(name), `${p.title}: $${name}`).toBe(true);
        }
      }
    }
  });

  it('a non-default job and datasource uids reach every Prometheus query and variable', () => {
    const config = MonitoringConfig.parse({ jobSelector: 'job="llm-exporter"', prometheusDatasourceUid: 'prom-main', clickhouseDatasourceUid: 'ch-main' });
    for (const entry of dashboards(config)) {
      const json = entry.build() as unknown as Record<string, unknown>;
      const text = JSON.stringify(json);
      expect(text, String(json.uid)).not.toContain('job=\\"tokenwatch\\"');
      const list = (json.templating as { list?: { name: string; current?: { value?: string } }[] }).list ?? [];
      const byName = new Map(list.map((v) => [v.name, v.current?.value]));
      if (byName.has('datasource')) {
        expect(byName.get('datasource')).toBe('prom-main');
        expect(byName.get('job')).toBe('llm-exporter');
        // Every selector of the exporter's own series goes through the job variable.
        for (const expr of text.match(/tokenwatch_[a-z_]+\{[^}]*\}/g) ?? []) if (expr.includes('job')) expect(expr).toContain('job=~\\"$job\\"');
      }
      if (byName.has('clickhouse')) expect(byName.get('clickhouse')).toBe('ch-main');
    }
  });

  it('uses only fields that Grafana\'s dashboard schema defines', () => {
    const dashboardFields = schemaFields('Dashboard');
    const panelFields = new Set([...schemaFields('Panel'), ...schemaFields('RowPanel')]);
    for (const { json } of built) {
      for (const key of Object.keys(json)) expect(dashboardFields.has(key), `dashboard field ${key}`).toBe(true);
      for (const p of panelsOf(json)) for (const key of Object.keys(p)) expect(panelFields.has(key), `${p.title}: panel field ${key}`).toBe(true);
    }
  });

  it('the conversation list links to the thread view', () => {
    const list = built.find((d) => d.json.uid === 'tokenwatch-conversations')!;
    const text = JSON.stringify(list.json);
    expect(text).toContain('/d/tokenwatch-conversation-thread?var-conversation=${__value.raw}');
    expect(built.some((d) => d.json.uid === 'tokenwatch-conversation-thread')).toBe(true);
  });
});

describe('dashboards: every query runs on live data', () => {
  let db: TestDatabase;
  let pipeline: Pipeline;
  let http: HttpServer;
  let prometheus: PrometheusServer;
  let store: EventStore;
  let stateDir: string;
  let probes: ProbeRunner;
  let traffic: NodeJS.Timeout;

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
    await seedAll(db.pool, { requests: 3000, spendLogs: 1000 });
    // One bad row, so the invalid-rows panels have a series.
    await db.pool.query("INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens) VALUES (gen_random_uuid(), 'acme.example.com', now(), 'claude-sonnet-4-5', 'inference', 200, -1)");
    stateDir = mkdtempSync(join(tmpdir(), 'tw-dash-'));
    const config = testConfig(db.url, {
      stateDir,
      sources: [{ type: 'claude-nexus-proxy', pollInterval: '300ms' }, { type: 'sidekick-forge', pollInterval: '1s', snapshotInterval: '1s' }, { type: 'litellm', pollInterval: '1s' }],
    });
    store = await openStore(config);
    await store.migrate();
    const metrics = new MetricsRegistry();
    pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted'), new MemorySink()], store: new MemoryCheckpointStore(), autoSources: false, metrics });
    await pipeline.backfill();
    pipeline.start();
    probes = new ProbeRunner([postgresProbe('postgres', db.url)]);
    probes.start(1000, 2000);
    const port = await freePortOnLoopback();
    http = await listen(metricsApp(() => metrics.collect(pipeline.statuses(), pipeline.quality.snapshot(), probes.snapshot(), pipeline.sinks()), () => ({ ready: true })), `127.0.0.1:${port}`);
    const rulesDir = join(stateDir, 'rules');
    mkdirSync(rulesDir);
    writeFileSync(join(rulesDir, 'tokenwatch.rules.yml'), prometheusRules({ ...defaults, evaluationInterval: '1s', evaluate: 'grafana' }));
    prometheus = await startPrometheus([{ job: 'tokenwatch', targets: [`127.0.0.1:${port}`] }], { extraConfig: `rule_files: ['${join(rulesDir, 'tokenwatch.rules.yml')}']` });
    // Live traffic, so that rates and quantiles have something to show.
    let n = 0;
    traffic = setInterval(() => {
      n += 1;
      void insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(20, { seed: 500 + n, idPrefix: `dash-${n}-`, spanMs: 10_000 }));
    }, 300);
    await eventually(async () => ((await prometheus.query(`count(tokenwatch:request_duration_seconds:p95_5m > 0)`))[0]?.value ?? 0) > 0, 60_000, 'recording rules with live data');
  });
  afterAll(async () => {
    clearInterval(traffic);
    await prometheus?.stop();
    await http?.close();
    probes?.stop();
    await pipeline?.close();
    await store?.close();
    await db?.drop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const expandProm = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1h').replaceAll('$__interval', '15s').replace(/\$(tenant|client)\b/g, '.*').replaceAll('$job', 'tokenwatch');

  it('every PromQL target returns data (or is listed with the reason it cannot)', async () => {
    const unchecked: string[] = [];
    for (const { json } of built) {
      for (const p of panelsOf(json)) {
        for (const t of (p.targets ?? []).filter((t) => typeof t.expr === 'string')) {
          const expr = expandProm(String(t.expr));
          if (/ offset (1d|30d)/.test(expr)) {
            await prometheus.query(expr);
            unchecked.push(`${String(json.uid)} / ${p.title} / ${String(t.legendFormat)}: compares with a previous period older than this test's Prometheus`);
            continue;
          }
          // Live data: a series can lag a scrape or a rule evaluation behind under a loaded CI
          // machine, so each target gets a few seconds to show data before it fails.
          let result = await prometheus.query(expr);
          for (const deadline = Date.now() + 10_000; result.length === 0 && Date.now() < deadline;) {
            await new Promise((resolve) => setTimeout(resolve, 500));
            result = await prometheus.query(expr);
          }
          expect(result.length, `${String(json.uid)} / ${p.title}: ${expr}`).toBeGreaterThan(0);
        }
      }
    }
    console.log(`PromQL targets not checked for data (they ran without error):\n  ${unchecked.join('\n  ')}`);
  });

  it('every ClickHouse target runs with Grafana macros expanded and returns rows', async () => {
    const [conversation] = await store.query<{ id: string }>("SELECT conversation_id AS id FROM tokenwatch.requests FINAL WHERE conversation_id != '' AND is_subtask LIMIT 1");
    const range = { from: new Date(Date.now() - 30 * 86_400_000), to: new Date(Date.now() + 60_000) };
    const expand = (sql: string, search = '') => expandMacros(sql, { ...range, values: { user: '', search, conversation: conversation!.id, content_limit: '2000' } });
    let checked = 0;
    for (const { json } of built) {
      for (const p of panelsOf(json)) {
        for (const t of (p.targets ?? []).filter((t) => typeof t.rawSql === 'string')) {
          const sql = expand(String(t.rawSql));
          expect(sql, 'all macros expanded').not.toMatch(/\$\{|\$__/);
          const rows = await store.query<Record<string, unknown>>(sql);
          expect(rows.length, `${String(json.uid)} / ${p.title}`).toBeGreaterThan(0);
          checked += 1;
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(12);
    // The free-text search finds conversations by content.
    const list = panelsOf(built.find((d) => d.json.uid === 'tokenwatch-conversations')!.json).find((p) => p.title === 'Conversations' && p.type !== 'row')!;
    const found = await store.query<{ conversation_id: string }>(expand(String(list.targets![0]!.rawSql), 'Question 1'));
    expect(found.length).toBeGreaterThan(0);
    expect((await store.query(expand(String(list.targets![0]!.rawSql), 'no such text anywhere'))).length).toBe(0);
  });
});
