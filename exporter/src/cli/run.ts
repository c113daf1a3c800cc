// `tokenwatch run`: the long-running job. The HTTP address is bound first, so a port in use
// ends the process before any source is read; sources that are down at start are waited for
// (their streams show as down on /metrics and /readyz) rather than ending it.
import { requireUsableStateDir } from '../config/state-dir.ts';
import { configOrExit, loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { loadWebConfig } from '../http/web-config.ts';
import { openRuntime, type Runtime } from './runtime.ts';
import { ListenError, listen, metricsApp, readiness, type HttpServer } from '../http/server.ts';
import { startOtlpPush } from '../metrics/otel.ts';
import { VERSION } from '../version.ts';
import { errorText } from '../log.ts';
import { DEMO_LIVE_RATE } from '../embedded/pglite-server.ts';
import { redactSecrets } from '../config/load.ts';

/** A stop that takes longer than this (a hung sink or database) ends the process anyway, with code 1. */
const SHUTDOWN_DEADLINE_MS = 30_000;

export async function runCommand(options: CommonOptions & { demoTraffic: boolean }): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  const { webConfigFile, telemetryPath } = loaded.config.server;
  const web = webConfigFile === undefined ? undefined : configOrExit(() => loadWebConfig(webConfigFile));
  // Before the HTTP server: an unusable state directory is a configuration error, exit 2 at once.
  configOrExit(() => requireUsableStateDir(loaded.config.stateDir));
  // What is running, filled in as it starts: the HTTP server answers before the runtime exists.
  const running: {
    opened?: Promise<Runtime>;
    runtime?: Runtime;
    progress?: NodeJS.Timeout;
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
    web,
    telemetryPath,
  );
  let http: HttpServer;
  try {
    http = await listen(app, loaded.config.server.listenAddress, web?.tls);
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    logger.error({ address: loaded.config.server.listenAddress, code: error.code }, error.message);
    process.stderr.write(`tokenwatch: ${error.message}\n`);
    process.exit(1);
  }
  logger.info({ address: http.address, endpoints: [telemetryPath, '/healthz', '/readyz'], tls: web?.tls !== undefined, basicAuth: web?.users !== undefined }, 'serving HTTP');

  let stopping = false;
  // Aborted on shutdown: opening can take seconds (the demo database's first day of traffic).
  const opening = new AbortController();
  const stop = async (signal: string, code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    opening.abort(new Error(`stopped by ${signal} while starting`));
    setTimeout(() => {
      logger.error({ afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    clearInterval(running.progress);
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
    signal: opening.signal,
    onFatal: (error) => {
      logger.error({ error: errorText(error) }, 'cannot run');
      process.stderr.write(`tokenwatch: ${errorText(error)}\n`);
      void stop('fatal', 1);
    },
  });
  // A start interrupted by a signal is not an error: stop() ends the process.
  const runtime = (running.runtime = await running.opened.catch((error: unknown) => {
    if (stopping) return undefined;
    throw error;
  }));
  if (stopping || !runtime) return;
  runtime.pipeline.start();
  runtime.probes.start(loaded.config.probes.interval, loaded.config.probes.timeout);
  running.otlp = loaded.config.otlp.enabled ? startOtlpPush(runtime.collect, { intervalMs: loaded.config.otlp.interval, version: VERSION }) : undefined;
  if (running.otlp) logger.info({ intervalMs: loaded.config.otlp.interval }, 'pushing metrics over OTLP (OTEL_EXPORTER_OTLP_* variables)');

  const embedded = runtime.embedded;
  if (embedded && options.demoTraffic) {
    embedded.startTraffic(DEMO_LIVE_RATE, (error) => logger.warn({ error: errorText(error) }, 'demo traffic insert failed'));
    logger.info({ requestsPerSecond: DEMO_LIVE_RATE }, 'embedded demo: simulated live traffic into all three schemas (--no-demo-traffic to stop)');
  }
  process.stderr.write(banner({ address: http.address, telemetryPath, tls: web?.tls !== undefined, embedded: embedded !== undefined, databaseUrl: loaded.config.sources[0]?.databaseUrl, terminal: process.stderr.isTTY === true }));
  const pipeline = runtime.pipeline;
  running.progress = setInterval(() => {
    const statuses = pipeline.statuses();
    logger.info(
      { rowsRead: statuses.reduce((n, s) => n + s.rowsRead, 0), eventsEmitted: statuses.reduce((n, s) => n + s.eventsEmitted, 0), failing: statuses.filter((s) => s.lastError).map((s) => s.id) },
      'progress',
    );
  }, 30_000);
}

/**
 * What a new user needs once, at start, on a terminal: where the metrics are, how to query
 * the events, where the dashboards are and how to bring up Grafana. Nothing when stderr is not
 * a terminal (the 'serving HTTP' log line has the address).
 */
export function banner(options: { address: string; telemetryPath?: string; tls: boolean; embedded: boolean; databaseUrl: string | undefined; terminal: boolean }): string {
  if (!options.terminal) return '';
  const address = options.address.replace(/^(0\.0\.0\.0|::|\[::\])(?=:)/, 'localhost');
  // Run through npm (npm start) the CLI is `npm run tokenwatch --`; installed, it is `tokenwatch`.
  const cli = process.env.npm_lifecycle_event ? 'npm run tokenwatch --' : 'tokenwatch';
  const source = options.embedded
    ? 'the embedded demo database (simulated Claude Nexus Proxy, Sidekick Forge and LiteLLM traffic)'
    : redactSecrets(options.databaseUrl ?? '');
  const bold = (text: string) => `\x1b[1m${text}\x1b[0m`;
  return [
    '',
    `${bold(`tokenwatch ${VERSION}`)} is reading ${source}`,
    `  Metrics     ${options.tls ? 'https' : 'http'}://${address}${options.telemetryPath ?? '/metrics'}   (health: /healthz, /readyz)`,
    `  Events      ${cli} query "SELECT tenant, count() AS requests, sum(cost_usd) AS cost FROM tokenwatch.requests FINAL GROUP BY tenant"`,
    `  Reports     ${cli} report usage --month ${new Date().toISOString().slice(0, 7)} --by tenant --format table`,
    '  Dashboards  provisioning/grafana/dashboards/ (generated from dashboards/); with Docker: docker compose up -d, then http://localhost:3000',
    '  Stop        Ctrl-C (the next start resumes where this one stopped)',
    '',
    '',
  ].join('\n');
}
