// `tokenwatch simulate`: realistic traffic into the source tables of all three schemas, in the
// database DATABASE_URL names (or the embedded demo database): a history of past days written
// at once, then live traffic at a rate until stopped. Creates the tables where they are
// missing. For trying tokenwatch, demos and load tests; never point it at production.
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import { loadOrExit, type CommonOptions, EXIT_CONFIG } from './load-or-exit.ts';
import { startProgress } from './progress.ts';
import { startEmbeddedDatabase } from '../embedded/pglite-server.ts';
import { Simulator } from '../simulate/simulator.ts';
import { SourceName } from '../model/events.ts';
import { parseDurationMs } from '../config/duration.ts';
import { errorText } from '../log.ts';
import { redactSecrets } from '../config/load.ts';

export interface SimulateOptions extends CommonOptions {
  history?: string;
  rate: string;
  seed: string;
  for?: string;
  live: boolean;
  sources?: string;
  readyFile?: string;
  progress: boolean;
  json?: boolean;
}

function fail(message: string): never {
  process.stderr.write(`tokenwatch simulate: ${message}\n`);
  process.exit(EXIT_CONFIG);
}

export async function simulateCommand(options: SimulateOptions): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  const historyMs = options.history === undefined ? 0 : parseDurationMs(options.history) ?? fail(`--history: "${options.history}" is not a duration such as 7d or 12h`);
  const forMs = options.for === undefined ? undefined : parseDurationMs(options.for) ?? fail(`--for: "${options.for}" is not a duration such as 10m`);
  const rate = Number(options.rate);
  if (!(rate > 0 && rate <= 10_000)) fail(`--rate: "${options.rate}" is not a number of requests per second between 0 and 10000`);
  const seed = Number(options.seed);
  if (!Number.isInteger(seed)) fail(`--seed: "${options.seed}" is not an integer`);
  const sources = (options.sources ?? SourceName.options.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of sources) if (!SourceName.safeParse(s).success) fail(`--sources: unknown source type "${s}"; expected a comma-separated list of ${SourceName.options.join(', ')}`);

  // The database: DATABASE_URL (or the sources' databaseUrl), else the embedded one.
  const embedded = loaded.embedded ? await startEmbeddedDatabase(loaded.config.stateDir, { populate: false }) : undefined;
  const url = embedded?.url ?? loaded.config.sources[0]!.databaseUrl!;
  const pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'tokenwatch-simulate' });
  pool.on('error', () => undefined);
  const simulator = new Simulator(pool, { seed, rate, sources: sources as SourceName[], onError: (error) => logger.warn({ error: errorText(error) }, 'simulated traffic insert failed; retrying') });
  const started = Date.now();
  let stopping = false;
  const finish = async (): Promise<void> => {
    await simulator.stop();
    await pool.end();
    await embedded?.close();
    const summary = { database: embedded ? `[embedded] ${embedded.dataDir}` : redactSecrets(url), seconds: (Date.now() - started) / 1000, rows: simulator.counts };
    logger.info(summary, 'simulation stopped');
    process.stdout.write(options.json ? `${JSON.stringify(summary)}\n` : `${Object.entries(simulator.counts).map(([t, n]) => `${t.padEnd(26)} ${n}`).join('\n')}\n${summary.seconds.toFixed(1)} s\n`);
  };
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void finish().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  try {
    await simulator.setup();
  } catch (error) {
    throw new Error(`cannot create the source tables in ${redactSecrets(url)}: ${errorText(error)}`, { cause: error });
  }
  if (historyMs > 0) {
    const progress = startProgress({ label: 'history', unit: 'hours', total: Math.ceil(historyMs / 3_600_000), logger, bar: options.progress });
    const counts = await simulator.history(historyMs / 86_400_000, (done) => progress.update(done)).finally(() => progress.stop());
    logger.info({ days: historyMs / 86_400_000, rows: counts, seconds: (Date.now() - started) / 1000 }, 'history written');
  }
  if (options.readyFile) writeFileSync(options.readyFile, `${new Date().toISOString()}\n`);
  if (!options.live || stopping) return stop();
  logger.info({ requestsPerSecond: rate, sources }, 'live traffic started (Ctrl-C to stop)');
  simulator.start();
  if (forMs !== undefined) setTimeout(stop, forMs);
}
