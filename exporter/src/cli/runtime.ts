// Assembles the parts every command needs from a loaded configuration: the embedded demo
// database when no database is configured, the checkpoint store, the sinks and the pipeline.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { requireUsableStateDir } from '../config/state-dir.ts';
import { join } from 'node:path';
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
import { openStore, StoreUnavailable, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { ProcessMetrics } from '../metrics/process-metrics.ts';
import { DurableCounters, type DurableSeries } from '../metrics/durable-counters.ts';
import { VERSION } from '../version.ts';

export interface Runtime {
  pipeline: Pipeline;
  embedded: EmbeddedDatabase | undefined;
  metrics: MetricsRegistry;
  probes: ProbeRunner;
  /** The ClickHouse event store, unless disabled (clickhouse.enabled) or unavailable. */
  store: EventStore | undefined;
  /** Every metric family, as /metrics and the OTLP push expose them. */
  collect(): Family[];
  close(): Promise<void>;
}

/**
 * stateDir/clean-shutdown exists only between a clean stop and the next start. Read (and
 * removed) at start: a process that dies before mark() leaves none, so its successor repairs
 * what the crash may have cut short (Sink.recover).
 */
function cleanShutdownMarker(stateDir: string): { wasClean: boolean; mark(): void } {
  const file = join(stateDir, 'clean-shutdown');
  const wasClean = existsSync(file);
  rmSync(file, { force: true });
  return {
    wasClean,
    mark() {
      mkdirSync(stateDir, { recursive: true });
      writeFileSync(file, `${new Date().toISOString()}\n`);
    },
  };
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
  for (const probe of config.probes.http) {
    const token = probe.bearerTokenFile ? readFileSync(probe.bearerTokenFile, 'utf8').trim() : probe.bearerToken;
    probes.push(httpProbe(probe.name, probe.url, probe.kind, token));
  }
  return probes;
}

/** Points every source at the embedded database when none is configured; returns it. */
export async function resolveDatabase(loaded: LoadedConfig, logger: Logger, signal?: AbortSignal): Promise<EmbeddedDatabase | undefined> {
  requireUsableStateDir(loaded.config.stateDir);
  if (!loaded.embedded) return undefined;
  const embedded = await startEmbeddedDatabase(loaded.config.stateDir, { signal });
  logger.info(
    { dataDir: embedded.dataDir, created: embedded.created },
    embedded.created
      ? 'no DATABASE_URL: created the embedded demo database with a day of simulated traffic of all three source schemas'
      : 'no DATABASE_URL: using the embedded demo database',
  );
  for (const source of loaded.config.sources) source.databaseUrl = embedded.url;
  return embedded;
}

/** Opens the ClickHouse store (embedded unless CLICKHOUSE_URL) and applies migrations. */
export async function openEventStore(config: Config, logger: Logger, options: { migrate: boolean }): Promise<EventStore | undefined> {
  if (!config.clickhouse.url) requireUsableStateDir(config.stateDir);
  if (!config.clickhouse.enabled) return undefined;
  let store: EventStore;
  try {
    store = await openStore(config);
  } catch (error) {
    if (error instanceof StoreUnavailable && config.clickhouse.url === undefined) {
      logger.warn({ error: error.message }, 'ClickHouse store disabled');
      return undefined;
    }
    throw error;
  }
  try {
    if (options.migrate) {
      const applied = await store.migrate();
      logger.info({ store: store.location, database: store.database, applied }, applied.length > 0 ? 'ClickHouse migrations applied' : 'ClickHouse schema up to date');
    }
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

/** The process counters that outlive the process (metrics/durable-counters.ts), as they are now. */
function durableSeries(metrics: MetricsRegistry, pipeline: Pipeline): DurableSeries[] {
  return [
    ...metrics.guard.counts('overflow').map(([metric, label, value]): DurableSeries => ({ metric: 'seriesOverflow', labels: [metric, label], value })),
    ...metrics.guard.counts('shortened').map(([metric, label, value]): DurableSeries => ({ metric: 'labelValuesShortened', labels: [metric, label], value })),
    ...pipeline.sinks().map((s): DurableSeries => ({ metric: 'sinkFailures', labels: [s.sink], value: s.failures })),
  ];
}

function restoreDurableCounters(saved: readonly DurableSeries[], metrics: MetricsRegistry, pipeline: Pipeline): void {
  for (const s of saved) {
    if (s.metric === 'sinkFailures') pipeline.restoreSinkFailures(s.labels[0]!, s.value);
    else metrics.guard.restoreCounts(s.metric === 'seriesOverflow' ? 'overflow' : 'shortened', s.labels[0]!, s.labels[1]!, s.value);
  }
}

export interface RuntimeOptions {
  /** `run`: start even when a source cannot be reached yet, and keep trying (Pipeline's waitForSources). */
  waitForSources?: boolean;
  /** Called when the pipeline can no longer run (see PipelineOptions.onFatal). */
  onFatal?: (error: Error) => void;
  /** Aborted on shutdown: stops the demo database's first population (the one long step of opening). */
  signal?: AbortSignal;
}

export async function openRuntime(loaded: LoadedConfig, logger: Logger, options: RuntimeOptions = {}): Promise<Runtime> {
  const embedded = await resolveDatabase(loaded, logger, options.signal);
  const sinks: Sink[] = [];
  if (loaded.config.sinks.jsonl) sinks.push(new JsonlSink(loaded.config.sinks.jsonl));
  let store: EventStore | undefined;
  try {
    // A shutdown during opening stops between steps: nothing starts reading after it.
    options.signal?.throwIfAborted();
    store = await openEventStore(loaded.config, logger, { migrate: loaded.config.clickhouse.migrateOnStart });
    options.signal?.throwIfAborted();
    if (store) {
      const sink = new ClickHouseSink(store, loaded.config.clickhouse.content);
      await sink.restoreRejectedCounts();
      sinks.push(sink);
    }
    const metrics = createMetricsRegistry(loaded.config);
    const shutdown = cleanShutdownMarker(loaded.config.stateDir);
    options.signal?.throwIfAborted();
    const pipeline = await Pipeline.open({
      previousRunClean: shutdown.wasClean,
      config: loaded.config,
      logger,
      sinks,
      store: new FileCheckpointStore(loaded.config.stateDir),
      autoSources: loaded.autoSources,
      metrics,
      waitForSources: options.waitForSources,
      onFatal: options.onFatal,
    });
    if (options.signal?.aborted) {
      await pipeline.close();
      options.signal.throwIfAborted();
    }
    const durable = new DurableCounters(join(loaded.config.stateDir, 'counters.json'));
    restoreDurableCounters(durable.load(), metrics, pipeline);
    const probes = new ProbeRunner(probesFor(loaded.config));
    const processMetrics = new ProcessMetrics();
    return {
      pipeline,
      embedded,
      metrics,
      probes,
      store,
      collect: () => {
        // Saved before shown: no scrape sees a value a crash could take back.
        durable.flush(durableSeries(metrics, pipeline));
        return metrics.collect(pipeline.statuses(), pipeline.quality.snapshot(), probes.snapshot(), pipeline.sinks(), { ...processMetrics.sample(), version: VERSION });
      },
      async close() {
        probes.stop();
        processMetrics.stop();
        await pipeline.close();
        durable.flush(durableSeries(metrics, pipeline));
        // Every write finished and was checkpointed: the next start has nothing to repair
        // (unless a repair this process owed was never done).
        if (!pipeline.repairPending()) shutdown.mark();
        await store?.close();
        await embedded?.close();
      },
    };
  } catch (error) {
    await store?.close();
    await embedded?.close();
    throw error;
  }
}
