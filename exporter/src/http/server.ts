// The HTTP server: /metrics for Prometheus, /healthz (the process is alive) and /readyz
// (every source stream has completed a poll and none is failing).
import express from 'express';
import type { Server } from 'node:http';
import type { Pipeline } from '../pipeline/pipeline.ts';
import type { Family } from '../metrics/families.ts';
import { PROMETHEUS_CONTENT_TYPE, encodeForScrape, prometheusText } from '../metrics/prometheus-text.ts';

export interface HttpServer {
  server: Server;
  address: string;
  close(): Promise<void>;
}

export function readiness(pipeline: Pipeline): { ready: boolean; streams: { id: string; ok: boolean; error: string | null }[] } {
  const streams = pipeline.statuses().map((s) => ({ id: s.id, ok: s.lastSuccessAt !== null && s.lastError === null, error: s.lastError }));
  return { ready: streams.length > 0 && streams.every((s) => s.ok), streams };
}

/** Serves `collect()` as Prometheus text; `ready()` decides /readyz. */
export function metricsApp(collect: () => Family[], ready: () => { ready: boolean }): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', async (req, res) => {
    const { body, encoding } = await encodeForScrape(prometheusText(collect()), req.headers['accept-encoding']);
    res.setHeader('Content-Type', PROMETHEUS_CONTENT_TYPE);
    if (encoding) res.setHeader('Content-Encoding', encoding);
    res.send(body);
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const state = ready();
    res.status(state.ready ? 200 : 503).json(state);
  });
  app.get('/', (_req, res) => {
    res.type('text/plain').send('tokenwatch\n\n/metrics  Prometheus metrics\n/healthz  liveness\n/readyz   readiness (every source stream polled without error)\n');
  });
  return app;
}

export async function listen(app: express.Express, listenAddress: string): Promise<HttpServer> {
  const separator = listenAddress.lastIndexOf(':');
  const host = listenAddress.slice(0, separator) || '0.0.0.0';
  const port = Number(listenAddress.slice(separator + 1));
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, host, () => resolve(s));
    s.once('error', reject);
  });
  const bound = server.address();
  const address = typeof bound === 'object' && bound ? `${bound.address}:${bound.port}` : listenAddress;
  return {
    server,
    address,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
