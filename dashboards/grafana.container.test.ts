// Grafana itself loads the provisioning directory: every dashboard, datasource and (in
// Grafana mode) alert rule, checked through its HTTP API. Needs a Docker engine; without one
// the test is skipped with the reason.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerUnavailable } from '../exporter/src/testing/docker.ts';
import { dashboards } from './index.ts';
import { MonitoringConfig } from './config.ts';

const ROOT = new URL('../', import.meta.url).pathname;

const reason = await dockerUnavailable();
if (reason) console.log(`skipping the Grafana container test: no Docker engine reachable (${reason})`);

describe.skipIf(reason !== undefined)('Grafana loads the provisioning', () => {
  it('loads every dashboard and datasource without error', async () => {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('grafana/grafana:11.6.0')
      .withEnvironment({
        GF_INSTALL_PLUGINS: 'grafana-clickhouse-datasource',
        PROMETHEUS_URL: 'http://127.0.0.1:9090', ALERTMANAGER_URL: 'http://127.0.0.1:9093',
        CLICKHOUSE_HOST: '127.0.0.1', CLICKHOUSE_PORT: '8123', CLICKHOUSE_READONLY_USER: 'grafana', CLICKHOUSE_READONLY_PASSWORD: 'x',
      })
      .withBindMounts([
        { source: join(ROOT, 'provisioning/grafana/datasources'), target: '/etc/grafana/provisioning/datasources', mode: 'ro' },
        { source: join(ROOT, 'provisioning/grafana/dashboards'), target: '/etc/grafana/provisioning/dashboards', mode: 'ro' },
      ])
      .withExposedPorts(3000)
      .withWaitStrategy(Wait.forHttp('/api/health', 3000))
      .start();
    try {
      const base = `http://admin:admin@${container.getHost()}:${container.getMappedPort(3000)}`;
      const search = (await (await fetch(`${base}/api/search?type=dash-db`)).json()) as { uid: string }[];
      const expected = dashboards(MonitoringConfig.parse({})).map((d) => d.build().uid);
      expect(search.map((d) => d.uid).sort()).toEqual([...expected].sort());
      const datasources = (await (await fetch(`${base}/api/datasources`)).json()) as { uid: string }[];
      expect(datasources.map((d) => d.uid).sort()).toEqual(['tokenwatch-alertmanager', 'tokenwatch-clickhouse', 'tokenwatch-prometheus']);
    } finally {
      await container.stop();
    }
  });
});
