// docker-compose.yml, checked without a Docker engine: every image pinned to a version, every
// mounted path present in the repository, ports consistent with what each service listens on
// and what the others connect to, every service that another waits for has a health check,
// Grafana's ClickHouse plugin is the datasource type the dashboards use. Where a Docker engine
// is reachable, the stack is brought up for real (testcontainers); here that part skips.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { dockerUnavailable } from './exporter/src/testing/docker.ts';
import { CLICKHOUSE } from './dashboards/lib/grafana.ts';
import { COMPOSE_WEBHOOK_SINK } from './dashboards/generate.ts';

const ROOT = new URL('./', import.meta.url).pathname;

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;

/** An image reference pinned to a version: a tag with a digit, never latest (or a digest). */
function pinned(image: string): boolean {
  if (image.includes('@sha256:')) return true;
  const tag = image.split('/').at(-1)!.split(':')[1];
  return tag !== undefined && tag !== 'latest' && /\d/.test(tag);
}

/** host:port endpoints named in a text, e.g. "tokenwatch:9464" in prometheus.yml. */
function endpoints(text: string): { host: string; port: number }[] {
  return [...text.matchAll(/\b([a-z][a-z0-9-]*):(\d{2,5})\b/g)].filter((m) => m[1]! in services).map((m) => ({ host: m[1]!, port: Number(m[2]) }));
}

/** The ports a service listens on inside the network. */
const LISTENS: Record<string, number[]> = {
  postgres: [5432], clickhouse: [8123, 9000], tokenwatch: [9464], 'otel-collector': [4318, 8889, 13133], prometheus: [9090], alertmanager: [9093], 'webhook-sink': [8080], grafana: [3000], simulator: [],
  'prom-label-proxy': [9095], 'grafana-tenants': [],
};

describe('docker-compose.yml', () => {
  it('pins every image to a version, the Dockerfile\'s base images too', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.image ?? service.build, `${name} has an image or a build`).toBeDefined();
      if (service.build) {
        for (const from of readFileSync(join(ROOT, service.build, 'Dockerfile'), 'utf8').matchAll(/^FROM (\S+)/gm)) expect(pinned(from[1]!), `${name}: Dockerfile FROM ${from[1]}`).toBe(true);
      } else {
        expect(pinned(service.image!), `${name}: ${service.image}`).toBe(true);
      }
    }
  });

  it('mounts only paths that exist in the repository, and declares every named volume', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const [source] = volume.split(':');
        if (source!.startsWith('./')) expect(existsSync(join(ROOT, source!)), `${name}: ${source}`).toBe(true);
        else expect(compose.volumes, `${name}: volume ${source}`).toHaveProperty(source!);
      }
    }
  });

  it('publishes and connects to the ports the services listen on', () => {
    expect(Object.keys(LISTENS).sort()).toEqual(Object.keys(services).sort());
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) expect(LISTENS[name], `${name} publishes ${port}`).toContain(Number(port.split(':')[1]));
      for (const value of Object.values(service.environment ?? {})) {
        for (const e of endpoints(String(value))) expect(LISTENS[e.host], `${name} connects to ${e.host}:${e.port}`).toContain(e.port);
      }
    }
    // What the generated and mounted configuration files connect to.
    for (const file of ['provisioning/prometheus/prometheus.yml', 'provisioning/alertmanager/alertmanager.compose.yml', 'collector/otelcol.yaml']) {
      const found = endpoints(readFileSync(join(ROOT, file), 'utf8'));
      expect(found.length, file).toBeGreaterThan(0);
      for (const e of found) expect(LISTENS[e.host], `${file} connects to ${e.host}:${e.port}`).toContain(e.port);
    }
    expect(readFileSync(join(ROOT, 'provisioning/alertmanager/alertmanager.compose.yml'), 'utf8')).toContain(COMPOSE_WEBHOOK_SINK);
    // Alertmanager loads the compose variant, whose receivers are the webhook sink.
    expect(services.alertmanager!.command).toContain('--config.file=/etc/alertmanager/alertmanager.compose.yml');
    expect(services['webhook-sink']!.environment!.PORT).toBe('8080');
  });

  it('waits only for services that have a health check, and only once they are healthy', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(services, `${name} depends on ${dependency}`).toHaveProperty(dependency);
        expect(services[dependency]!.healthcheck?.test, `${dependency} (awaited by ${name}) has a health check`).toBeDefined();
        expect(condition, `${name} -> ${dependency}`).toBe('service_healthy');
      }
    }
  });

  it('reads the sources as the read-only role and installs the ClickHouse plugin the dashboards use, at a pinned version', () => {
    expect(services.tokenwatch!.environment!.DATABASE_URL).toMatch(/^postgres:\/\/tokenwatch_ro:/);
    expect(readFileSync(join(ROOT, 'docker/postgres/10-tokenwatch-readonly.sh'), 'utf8')).toMatch(/CREATE ROLE tokenwatch_ro LOGIN/);
    const [plugin, version] = services.grafana!.environment!.GF_INSTALL_PLUGINS!.split(' ');
    expect(plugin).toBe(CLICKHOUSE.type);
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(services.grafana!.environment!.CLICKHOUSE_READONLY_USER).toBe('grafana');
  });

  it('has an .env.example naming every variable the file reads', () => {
    const used = new Set([...readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8').matchAll(/\$\{([A-Z_]+)(:-[^}]*)?\}/g)].map((m) => m[1]!));
    const example = readFileSync(join(ROOT, '.env.example'), 'utf8');
    for (const name of used) expect(example, name).toMatch(new RegExp(`^${name}=`, 'm'));
  });
});

const noDocker = await dockerUnavailable();
if (noDocker) console.log(`skipping docker compose up: no Docker engine reachable (${noDocker})`);

describe.skipIf(noDocker !== undefined)('docker compose up', () => {
  it('brings the stack up: tokenwatch ready on the simulated data, Prometheus scraping it, Grafana healthy', async () => {
    const { DockerComposeEnvironment, Wait } = await import('testcontainers');
    const environment = await new DockerComposeEnvironment(ROOT, 'docker-compose.yml')
      .withEnvironment({ SIMULATOR_HISTORY: '2h' })
      .withWaitStrategy('grafana-1', Wait.forHealthCheck())
      .withWaitStrategy('tokenwatch-1', Wait.forHealthCheck())
      .up();
    try {
      const ready = await fetch('http://127.0.0.1:9464/readyz');
      expect(ready.status).toBe(200);
      const metrics = await (await fetch('http://127.0.0.1:9464/metrics')).text();
      expect(metrics).toMatch(/tokenwatch_requests_total\{source="claude-nexus-proxy"/);
      const targets = (await (await fetch('http://127.0.0.1:9090/api/v1/targets')).json()) as { data: { activeTargets: { labels: { job: string }; health: string }[] } };
      expect(targets.data.activeTargets.find((t) => t.labels.job === 'tokenwatch')?.health).toBe('up');
      expect((await fetch('http://127.0.0.1:3000/api/health')).status).toBe(200);
    } finally {
      await environment.down();
    }
  });
});
