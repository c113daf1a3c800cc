// collector/otelcol.yaml, checked without a collector binary: every pipeline names only
// receivers, processors and exporters the file defines, every defined one is used, the
// extensions are defined, and the OTLP receiver listens where tokenwatch pushes.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const config = parse(readFileSync(new URL('./otelcol.yaml', import.meta.url), 'utf8')) as {
  extensions?: Record<string, unknown>;
  receivers: Record<string, unknown>;
  processors?: Record<string, unknown>;
  exporters: Record<string, unknown>;
  service: { extensions?: string[]; pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
};

describe('collector/otelcol.yaml', () => {
  it('pipelines reference only defined components, and every component is used', () => {
    const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>() };
    for (const [name, pipeline] of Object.entries(config.service.pipelines)) {
      expect(name).toMatch(/^(metrics|logs|traces)(\/.+)?$/);
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const component of pipeline[kind] ?? []) {
          expect(config[kind] ?? {}, `${name}.${kind}: ${component}`).toHaveProperty(component);
          used[kind].add(component);
        }
      }
      expect(pipeline.receivers.length).toBeGreaterThan(0);
      expect(pipeline.exporters.length).toBeGreaterThan(0);
    }
    for (const kind of ['receivers', 'processors', 'exporters'] as const) expect([...used[kind]].sort(), kind).toEqual(Object.keys(config[kind] ?? {}).sort());
    for (const extension of config.service.extensions ?? []) expect(config.extensions, extension).toHaveProperty(extension);
  });

  it('receives OTLP/HTTP on 4318, where OTEL_EXPORTER_OTLP_ENDPOINT points, and exports to Prometheus and ClickHouse', () => {
    expect(JSON.stringify(config.receivers.otlp)).toContain('0.0.0.0:4318');
    expect(Object.keys(config.exporters).sort()).toEqual(['clickhouse', 'prometheus']);
    const compose = readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8');
    expect(compose).toContain('OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4318');
  });
});
