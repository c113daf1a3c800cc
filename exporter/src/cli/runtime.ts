// Assembles the parts every command needs from a loaded configuration: the embedded demo
// database when no database is configured, the checkpoint store, the sinks and the pipeline.
import type { LoadedConfig } from '../config/load.ts';
import type { Logger } from '../log.ts';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../embedded/pglite-server.ts';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import type { Sink } from '../sinks/sink.ts';
import { JsonlSink } from '../sinks/jsonl-sink.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { DEFAULT_LIMITS } from '../metrics/cardinality.ts';
import type { Family } from '../metrics/families.ts';
import { ProbeRunner, clickhouseProbe, httpProbe, postgresProbe, type Probe } from '../metrics/probes.ts';
import { redactSecrets } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

export interface Runtime {
  pipeline: Pipeline;
  embedded: EmbeddedDatabase | undefined;
  metrics: MetricsRegistry;
  probes: ProbeRunner;
  /** Every metric family, as /metrics and the OTLP push expose them. */
  collect(): Family[];
  close(): Promise<void>;
}

export function createMetricsRegistry(config: Config): MetricsRegistry {
  return new MetricsRegistry({
    limits: {
      maxSeriesPerMetric: config.metrics.maxSeriesPerMetric,
      maxValuesPerLabel: { ...DEFAULT_LIMITS.maxValuesPerLabel, ...config.metrics.maxValuesPerLabel },
      allow: config.metrics.allow as Record<string, string[]>,
    },
    accountWindowLimit: config.metrics.accountWindowLimit,
  });
}

/** One PostgreSQL probe per distinct source database, named after its host, plus the configured HTTP probes. */
function probesFor(config: Config): Probe[] {
  const probes: Probe[] = [];
  const seen = new Set<string>();
  for (const source of config.sources) {
    if (!source.databaseUrl || seen.has(source.databaseUrl)) continue;
    seen.add(source.databaseUrl);
    const host = redactSecrets(source.databaseUrl).replace(/^[a-z]+:\/\/([^@/]*@)?/, '').replace(/[/?].*$/, '');
    probes.push(postgresProbe(host, source.databaseUrl));
  }
  if (config.clickhouse.url) probes.push(clickhouseProbe(new URL(config.clickhouse.url).host, config.clickhouse.url));
  for (const probe of config.probes.http) probes.push(httpProbe(probe.name, probe.url, probe.kind));
  return probes;
}

/** Points every source at the embedded database when none is configured; returns it. */
export async function resolveDatabase(loaded: LoadedConfig, logger: Logger): Promise<EmbeddedDatabase | undefined> {
  if (!loaded.embedded) return undefined;
  const embedded = await startEmbeddedDatabase(loaded.config.stateDir);
  logger.info(
    { dataDir: embedded.dataDir, created: embedded.created },
    embedded.created
      ? 'no DATABASE_URL: created the embedded demo database with sample rows of all three source schemas'
      : 'no DATABASE_URL: using the embedded demo database',
  );
  for (const source of loaded.config.sources) source.databaseUrl = embedded.url;
  return embedded;
}

export async function openRuntime(loaded: LoadedConfig, logger: Logger, extraSinks: Sink[] = []): Promise<Runtime> {
  const embedded = await resolveDatabase(loaded, logger);
  const sinks: Sink[] = [...extraSinks];
  if (loaded.config.sinks.jsonl) sinks.push(new JsonlSink(loaded.config.sinks.jsonl));
  try {
    const metrics = createMetricsRegistry(loaded.config);
    const pipeline = await Pipeline.open({
      config: loaded.config,
      logger,
      sinks,
      store: new FileCheckpointStore(loaded.config.stateDir),
      autoSources: loaded.autoSources,
      metrics,
    });
    const probes = new ProbeRunner(probesFor(loaded.config));
    return {
      pipeline,
      embedded,
      metrics,
      probes,
      collect: () => metrics.collect(pipeline.statuses(), pipeline.quality.snapshot(), probes.snapshot(), pipeline.sinks()),
      async close() {
        probes.stop();
        await pipeline.close();
        await embedded?.close();
      },
    };
  } catch (error) {
    await embedded?.close();
    throw error;
  }
}
