// Tenant isolation from the tenants file. Everywhere: every table and view tokenwatch creates
// has a row policy for every tenant (and the unrestricted one), every generated statement
// parses in ClickHouse, and each policy's condition, applied on the embedded engine over
// seeded data, keeps exactly the tenant's rows in every table. Where a Docker engine is
// reachable: on a real ClickHouse server, tenant A's user reads none of tenant B's rows in
// any table (the embedded engine has no access management, so policies cannot be created there).
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededEventStore, type SeededEventStore } from '../exporter/src/testing/event-store.ts';
import { dockerUnavailable } from '../exporter/src/testing/docker.ts';
import { statements } from '../exporter/src/store/migrations.ts';
import { MonitoringConfig } from './config.ts';
import { TenantsFile, clickhouseTenantSql, clickhouseTenantUsersScript, grafanaTenantBundle, roleOf, storedTables, tenantCondition, tenantValues, userOf } from './tenants.ts';

const ROOT = new URL('../', import.meta.url).pathname;
// Tenants over the values the seeded data holds.
const tenants = TenantsFile.parse({
  tenants: [
    { id: 'acme', name: 'ACME', domains: ['acme.example.com'], teams: ['team-search'], clients: ['client-0'], viewers: ['a@acme.example.com'] },
    { id: 'globex', name: 'Globex', domains: ['globex.example.com'], teams: ['team-support'], clients: ['client-1'] },
  ],
});

describe('tenant isolation, generated', () => {
  let seeded: SeededEventStore;
  beforeAll(async () => {
    seeded = await seededEventStore({ requests: 1500, spendLogs: 600 });
  });
  afterAll(async () => {
    await seeded?.close();
  });

  it('gives every table and view a policy for every tenant, and grants the tenant roles nothing else', async () => {
    const sql = clickhouseTenantSql(tenants);
    const tables = storedTables();
    const [present] = await seeded.store.query<{ names: string[] }>("SELECT groupArray(name) AS names FROM system.tables WHERE database = 'tokenwatch' AND name != 'schema_migrations'");
    expect([...tables].sort()).toEqual([...present!.names].sort());
    for (const table of tables) {
      expect(sql, table).toContain(`CREATE ROW POLICY IF NOT EXISTS unrestricted ON tokenwatch.${table} FOR SELECT USING 1 TO tokenwatch, grafana;`);
      for (const t of tenants.tenants) {
        expect(sql).toContain(`GRANT SELECT ON tokenwatch.${table} TO ${roleOf(t)};`);
        expect(sql).toContain(`CREATE ROW POLICY IF NOT EXISTS tenant_${t.id} ON tokenwatch.${table} FOR SELECT USING ${tenantCondition(t)} TO ${roleOf(t)};`);
      }
    }
    expect(sql.match(/^GRANT /gm)).toHaveLength(tables.length * tenants.tenants.length);
    expect(clickhouseTenantUsersScript(tenants)).toContain(`CREATE USER IF NOT EXISTS ${userOf(tenants.tenants[0]!)} IDENTIFIED WITH sha256_password BY '\${CLICKHOUSE_TENANT_ACME_PASSWORD}' DEFAULT ROLE ${roleOf(tenants.tenants[0]!)} SETTINGS readonly = 1`);
  });

  it('every statement parses in ClickHouse', async () => {
    const all = statements(clickhouseTenantSql(tenants));
    expect(all.length).toBeGreaterThan(storedTables().length * 3);
    for (const statement of all) {
      // EXPLAIN AST parses without executing (the embedded engine refuses access management).
      const ast = JSON.stringify(await seeded.store.query(`EXPLAIN AST ${statement}`));
      expect(ast.length, statement).toBeGreaterThan(4);
    }
    await expect(seeded.store.query('EXPLAIN AST CREATE ROW POLICY p ON t FOR SELECT USIN tenant = 1')).rejects.toThrow(/Syntax error/);
  });

  it("each tenant's condition keeps exactly its rows in every table and view", async () => {
    for (const table of storedTables()) {
      const [all] = await seeded.store.query<{ n: number }>(`SELECT count() AS n FROM tokenwatch.${table}`);
      let kept = 0;
      for (const t of tenants.tenants) {
        const [row] = await seeded.store.query<{ n: number; foreign: number }>(
          `SELECT count() AS n, countIf(tenant NOT IN {values:Array(String)}) AS foreign FROM tokenwatch.${table} WHERE ${tenantCondition(t)}`,
          { values: tenantValues(t) },
        );
        const [truth] = await seeded.store.query<{ n: number }>(`SELECT count() AS n FROM tokenwatch.${table} WHERE has({values:Array(String)}, tenant)`, { values: tenantValues(t) });
        expect(Number(row!.foreign), `${table}, ${t.id}`).toBe(0);
        expect(Number(row!.n), `${table}, ${t.id}`).toBe(Number(truth!.n));
        kept += Number(row!.n);
      }
      expect(kept, table).toBeLessThanOrEqual(Number(all!.n));
    }
    // The big tables hold rows of both tenants (so the check above was not vacuous).
    for (const table of ['requests', 'messages', 'requests_daily']) {
      for (const t of tenants.tenants) {
        const [row] = await seeded.store.query<{ n: number }>(`SELECT count() AS n FROM tokenwatch.${table} WHERE ${tenantCondition(t)}`);
        expect(Number(row!.n), `${table}, ${t.id}`).toBeGreaterThan(0);
      }
    }
  });

  it("binds each tenant's Grafana datasources to its ClickHouse user and to the label proxy, under the uids the dashboards use", () => {
    // The dashboards' datasource variables start on the configured uids: the tenant's datasources have them.
    const config = MonitoringConfig.parse({});
    const bundle = grafanaTenantBundle(tenants.tenants[0]!, [], { prometheus: config.prometheusDatasourceUid, clickhouse: config.clickhouseDatasourceUid }) as { datasources: { uid: string; url?: string; jsonData: Record<string, string>; secureJsonData: Record<string, string> }[] };
    const byUid = new Map(bundle.datasources.map((d) => [d.uid, d]));
    expect([...byUid.keys()].sort()).toEqual([config.clickhouseDatasourceUid, config.prometheusDatasourceUid].sort());
    expect(byUid.get(config.clickhouseDatasourceUid)!.jsonData.username).toBe('grafana_acme');
    const prometheus = byUid.get(config.prometheusDatasourceUid)!;
    expect(prometheus.url).toBe('$PROM_LABEL_PROXY_URL');
    const matcher = new RegExp(`^(?:${prometheus.secureJsonData.httpHeaderValue1})$`);
    for (const value of tenantValues(tenants.tenants[0]!)) expect(matcher.test(value), value).toBe(true);
    for (const value of [...tenantValues(tenants.tenants[1]!), 'acmeXexample.com']) expect(matcher.test(value), value).toBe(false);
    // What the stack passes to the script and to ClickHouse.
    const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')) as { services: Record<string, { environment?: Record<string, string> }> };
    for (const service of ['grafana-tenants', 'clickhouse']) expect(compose.services[service]!.environment).toHaveProperty('CLICKHOUSE_TENANT_ACME_PASSWORD');
    expect(compose.services['grafana-tenants']!.environment!.PROM_LABEL_PROXY_URL).toBe('http://prom-label-proxy:9095');
  });

  it('refuses a tenants file where two tenants share a value, or a tenant has none', () => {
    expect(() => TenantsFile.parse({ tenants: [{ id: 'a', name: 'A', domains: ['x.example'] }, { id: 'b', name: 'B', domains: ['x.example'] }] })).toThrow(/x\.example\\?" belongs to tenant a already/);
    expect(() => TenantsFile.parse({ tenants: [{ id: 'a', name: 'A' }] })).toThrow(/lists no domain, project, team or client/);
    expect(() => TenantsFile.parse({ tenants: [{ id: 'A-1', name: 'A', domains: ['x'] }] })).toThrow(/lower-case/);
  });
});

const noDocker = await dockerUnavailable();
if (noDocker) console.log(`skipping the ClickHouse server tenant-isolation test: no Docker engine reachable (${noDocker})`);

describe.skipIf(noDocker !== undefined)('tenant isolation on a ClickHouse server', () => {
  it("tenant A's user reads none of tenant B's rows in any table or view", async () => {
    const { GenericContainer, Wait } = await import('testcontainers');
    const { createClient } = await import('@clickhouse/client');
    const container = await new GenericContainer('clickhouse/clickhouse-server:25.8')
      .withEnvironment({ CLICKHOUSE_USER: 'tokenwatch', CLICKHOUSE_PASSWORD: 'secret', CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT: '1' })
      .withExposedPorts(8123)
      .withWaitStrategy(Wait.forHttp('/ping', 8123))
      .start();
    const seeded = await seededEventStore({ requests: 600, spendLogs: 200 });
    try {
      const url = `http://${container.getHost()}:${container.getMappedPort(8123)}`;
      const admin = createClient({ url, username: 'tokenwatch', password: 'secret' });
      const { openStore } = await import('../exporter/src/store/clickhouse.ts');
      const { testConfig } = await import('../exporter/src/testing/fixtures.ts');
      const server = await openStore(testConfig(seeded.db.url, { clickhouse: { url: url.replace('://', '://tokenwatch:secret@') } }));
      await server.migrate();
      for (const table of storedTables().filter((t) => !t.endsWith('_mv'))) {
        const rows = await seeded.store.query<Record<string, unknown>>(`SELECT * FROM tokenwatch.${table}`);
        if (rows.length > 0) await server.insert(table, rows);
      }
      const withAdmin = TenantsFile.parse({ ...tenants, unrestrictedUsers: ['tokenwatch'] });
      for (const statement of statements(clickhouseTenantSql(withAdmin))) await admin.command({ query: statement });
      for (const t of withAdmin.tenants) {
        await admin.command({ query: `CREATE USER IF NOT EXISTS ${userOf(t)} IDENTIFIED WITH sha256_password BY 'pw-${t.id}' DEFAULT ROLE ${roleOf(t)}` });
        await admin.command({ query: `GRANT ${roleOf(t)} TO ${userOf(t)}` });
      }
      const [a, b] = withAdmin.tenants;
      const asA = createClient({ url, username: userOf(a!), password: `pw-${a!.id}` });
      for (const table of storedTables()) {
        const result = await asA.query({ query: `SELECT count() AS n, countIf(has({b:Array(String)}, tenant)) AS foreign FROM tokenwatch.${table}`, query_params: { b: tenantValues(b!) }, format: 'JSONEachRow' });
        const [row] = (await result.json()) as { n: string; foreign: string }[];
        expect(Number(row!.foreign), table).toBe(0);
      }
      await expect(asA.command({ query: 'TRUNCATE TABLE tokenwatch.requests' })).rejects.toThrow();
      await server.close();
      await Promise.all([admin.close(), asA.close()]);
    } finally {
      await seeded.close();
      await container.stop();
    }
  });
});
