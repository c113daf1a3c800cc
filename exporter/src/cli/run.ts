// `tokenwatch run`: the long-running job.
import { loadOrExit, type CommonOptions } from './program.ts';
import { openRuntime } from './runtime.ts';
import { listen, metricsApp, readiness } from '../http/server.ts';
import { startOtlpPush } from '../metrics/otel.ts';
import { VERSION } from '../version.ts';
import { errorText } from '../log.ts';

const DEMO_TRAFFIC_INTERVAL_MS = 5000;

export async function runCommand(options: CommonOptions & { demoTraffic: boolean }): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  const runtime = await openRuntime(loaded, logger);
  const store = runtime.store;
  const query = store && store.embedded ? (sql: string, params: Record<string, unknown>) => store.query<Record<string, unknown>>(sql, params) : undefined;
  const http = await listen(metricsApp(runtime.collect, () => readiness(runtime.pipeline), query), loaded.config.server.listenAddress);
  logger.info({ address: http.address, endpoints: ['/metrics', '/healthz', '/readyz'] }, 'serving HTTP');
  runtime.pipeline.start();
  runtime.probes.start(loaded.config.probes.interval, loaded.config.probes.timeout);
  const otlp = loaded.config.otlp.enabled ? startOtlpPush(runtime.collect, { intervalMs: loaded.config.otlp.interval, version: VERSION }) : undefined;
  if (otlp) logger.info({ intervalMs: loaded.config.otlp.interval }, 'pushing metrics over OTLP (OTEL_EXPORTER_OTLP_* variables)');

  let traffic: NodeJS.Timeout | undefined;
  if (runtime.embedded && options.demoTraffic) {
    traffic = setInterval(() => {
      runtime.embedded!.addTraffic().catch((error: unknown) => logger.warn({ error: errorText(error) }, 'demo traffic insert failed'));
    }, DEMO_TRAFFIC_INTERVAL_MS);
    logger.info({ everyMs: DEMO_TRAFFIC_INTERVAL_MS }, 'embedded demo: inserting a few sample rows every few seconds (--no-demo-traffic to stop)');
  }
  const progress = setInterval(() => {
    const statuses = runtime.pipeline.statuses();
    logger.info(
      { rowsRead: statuses.reduce((n, s) => n + s.rowsRead, 0), eventsEmitted: statuses.reduce((n, s) => n + s.eventsEmitted, 0), failing: statuses.filter((s) => s.lastError).map((s) => s.id) },
      'progress',
    );
  }, 30_000);

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    clearInterval(progress);
    if (traffic) clearInterval(traffic);
    await http.close();
    await otlp?.shutdown();
    await runtime.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
