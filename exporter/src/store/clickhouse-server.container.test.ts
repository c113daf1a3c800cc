// The event store on a ClickHouse server over HTTP (the path CLICKHOUSE_URL takes), and tenant
// isolation with a row policy for a read-only user (chDB refuses users and policies). Needs a
// Docker engine; without one the test is skipped with the reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerUnavailable } from '../testing/docker.ts';
import { createClient } from '@clickhouse/client';
import { seededEventStore, type SeededEventStore } from '../testing/event-store.ts';
import { testConfig } from '../testing/fixtures.ts';
import { openStore, type EventStore } from './clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { MemorySink } from '../sinks/memory-sink.ts';

const reason = await dockerUnavailable();
if (reason) console.log(`skipping the ClickHouse server test: no Docker engine reachable (${reason})`);

describe.skipIf(reason !== undefined)('ClickHouse server', () => {
  let seeded: SeededEventStore;
  let server: EventStore;
  let url: string;
  let stop: () => Promise<void>;
  const memory = new MemorySink();

  beforeAll(async () => {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('clickhouse/clickhouse-server:25.8')
      .withEnvironment({ CLICKHOUSE_USER: 'tokenwatch', CLICKHOUSE_PASSWORD: 'secret', CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT: '1' })
      .withExposedPorts(8123)
      .withWaitStrategy(Wait.forHttp('/ping', 8123))
      .start();
    stop = async () => void (await container.stop());
    url = `http://tokenwatch:secret@${container.getHost()}:${container.getMappedPort(8123)}`;
    seeded = await seededEventStore({ requests: 1000, spendLogs: 300, extraSinks: [memory] });
    server = await openStore(testConfig(seeded.db.url, { clickhouse: { url } }));
    await server.migrate();
    await new ClickHouseSink(server, 'redacted').write(memory.events);
  });
  afterAll(async () => {
    await server?.close();
    await seeded?.close();
    await stop?.();
  });

  it('stores the same rows over HTTP as the embedded engine', async () => {
    const count = 'SELECT count() AS n, toString(sum(cost_usd)) AS cost FROM tokenwatch.requests FINAL';
    expect(await server.query(count)).toEqual(await seeded.store.query(count));
  });

  it('a row policy confines a read-only user to one tenant', async () => {
    await server.command("CREATE USER IF NOT EXISTS grafana_acme IDENTIFIED BY 'x' SETTINGS readonly = 1");
    await server.command('GRANT SELECT ON tokenwatch.* TO grafana_acme');
    await server.command("CREATE ROW POLICY IF NOT EXISTS acme_only ON tokenwatch.requests FOR SELECT USING tenant = 'acme.example.com' TO grafana_acme");
    const acme = createClient({ url: url.replace('tokenwatch:secret', 'grafana_acme:x') });
    try {
      const rows = await (await acme.query({ query: 'SELECT DISTINCT tenant FROM tokenwatch.requests', format: 'JSONEachRow' })).json<{ tenant: string }>();
      expect(rows).toEqual([{ tenant: 'acme.example.com' }]);
      await expect(acme.command({ query: 'DROP TABLE tokenwatch.requests' })).rejects.toThrow();
    } finally {
      await acme.close();
    }
  });
});
