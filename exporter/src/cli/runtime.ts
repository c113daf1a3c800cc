// Assembles the parts every command needs from a loaded configuration: the embedded demo
// database when no database is configured, the checkpoint store, the sinks and the pipeline.
import type { LoadedConfig } from '../config/load.ts';
import type { Logger } from '../log.ts';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../embedded/pglite-server.ts';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import type { Sink } from '../sinks/sink.ts';
import { JsonlSink } from '../sinks/jsonl-sink.ts';

export interface Runtime {
  pipeline: Pipeline;
  embedded: EmbeddedDatabase | undefined;
  close(): Promise<void>;
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
    const pipeline = await Pipeline.open({
      config: loaded.config,
      logger,
      sinks,
      store: new FileCheckpointStore(loaded.config.stateDir),
      autoSources: loaded.autoSources,
    });
    return {
      pipeline,
      embedded,
      async close() {
        await pipeline.close();
        await embedded?.close();
      },
    };
  } catch (error) {
    await embedded?.close();
    throw error;
  }
}
