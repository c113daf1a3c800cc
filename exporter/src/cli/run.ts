// `tokenwatch run`: the long-running job. The HTTP address is bound first, so a port in use
// ends the process before any source is read; sources that are down at start are waited for
// (their streams show as down on /metrics and /readyz) rather than ending it.
import { loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { openRuntime, type Runtime } from './runtime.ts';
import { ListenError, listen, metricsApp, readiness, type HttpServer } from '../http/server.ts';
import { startOtlpPush } from '../metrics/otel.ts';
import { VERSION } from '../version.ts';
import { errorText } from '../log.ts';

const DEMO_TRAFFIC_INTERVAL_MS = 5000;
/** A stop that takes longer than this (a hung sink or database) ends the process anyway, with code 1. */
const SHUTDOWN_DEADLINE_MS = 30_000;

export async function runCommand(options: CommonOptions & { demoTraffic: boolean }): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  // What is running, filled in as it starts: the HTTP server answers before the runtime exists.
  const running: {
    opened?: Promise<Runtime>;
    runtime?: Runtime;
    progress?: NodeJS.Timeout;
    traffic?: NodeJS.Timeout;
    otlp?: ReturnType<typeof startOtlpPush>;
  } = {};
  const app = metricsApp(
    () => running.runtime?.collect() ?? [],
    () => (running.runtime ? readiness(running.runtime.pipeline) : { ready: false, streams: [] }),
    async (sql, params) => {
      const store = running.runtime?.store;
      if (!store?.embedded) throw new Error('no embedded event store in this process');
      return store.query<Record<string, unknown>>(sql, params);
    },
  );
  let http: HttpServer;
  try {
    http = await listen(app, loaded.config.server.listenAddress);
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    logger.error({ address: loaded.config.server.listenAddress, code: error.code }, error.message);
    process.stderr.write(`tokenwatch: ${error.message}\n`);
    process.exit(1);
  }
  logger.info({ address: http.address, endpoints: ['/metrics', '/healthz', '/readyz'] }, 'serving HTTP');

  let stopping = false;
  const stop = async (signal: string, code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error({ afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    clearInterval(running.progress);
    clearInterval(running.traffic);
    const current = await running.opened?.catch(() => undefined);
    await running.otlp?.shutdown();
    // In-flight polls stop after their current page and save their checkpoint.
    await current?.close();
    await http.close();
    const statuses = current?.pipeline.statuses() ?? [];
    logger.info({ signal, rowsRead: statuses.reduce((n, s) => n + s.rowsRead, 0) }, 'stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  running.opened = openRuntime(loaded, logger, {
    waitForSources: true,
    onFatal: (error) => {
      logger.error({ error: errorText(error) }, 'cannot run');
      process.stderr.write(`tokenwatch: ${errorText(error)}\n`);
      void stop('fatal', 1);
    },
  });
  const runtime = (running.runtime = await running.opened);
  if (stopping) return;
  runtime.pipeline.start();
  runtime.probes.start(loaded.config.probes.interval, loaded.config.probes.timeout);
  running.otlp = loaded.config.otlp.enabled ? startOtlpPush(runtime.collect, { intervalMs: loaded.config.otlp.interval, version: VERSION }) : undefined;
  if (running.otlp) logger.info({ intervalMs: loaded.config.otlp.interval }, 'pushing metrics over OTLP (OTEL_EXPORTER_OTLP_* variables)');

  const embedded = runtime.embedded;
  if (embedded && options.demoTraffic) {
    running.traffic = setInterval(() => {
      embedded.addTraffic().catch((error: unknown) => logger.warn({ error: errorText(error) }, 'demo traffic insert failed'));
    }, DEMO_TRAFFIC_INTERVAL_MS);
    logger.info({ everyMs: DEMO_TRAFFIC_INTERVAL_MS }, 'embedded demo: inserting a few sample rows every few seconds (--no-demo-traffic to stop)');
  }
  const pipeline = runtime.pipeline;
  running.progress = setInterval(() => {
    const statuses = pipeline.statuses();
    logger.info(
      { rowsRead: statuses.reduce((n, s) => n + s.rowsRead, 0), eventsEmitted: statuses.reduce((n, s) => n + s.eventsEmitted, 0), failing: statuses.filter((s) => s.lastError).map((s) => s.id) },
      'progress',
    );
  }, 30_000);
}
