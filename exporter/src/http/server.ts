// The HTTP server: /metrics for Prometheus, /healthz (the process is alive) and /readyz
// (every source stream has completed a poll and none is failing).
import express from 'express';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { basicAuth, type WebConfig } from './web-config.ts';
import type { Pipeline } from '../pipeline/pipeline.ts';
import type { Family } from '../metrics/families.ts';
import { PROMETHEUS_CONTENT_TYPE, writeScrape } from '../metrics/prometheus-text.ts';
import { readOnlyQueryProblem } from '../store/read-only.ts';
import { errorText } from '../log.ts';

export interface HttpServer {
  server: Server;
  address: string;
  close(): Promise<void>;
}

export function readiness(pipeline: Pipeline): { ready: boolean; streams: { id: string; ok: boolean; error: string | null }[] } {
  const streams = pipeline.statuses().map((s) => ({ id: s.id, ok: s.lastSuccessAt !== null && s.lastError === null, error: s.lastError }));
  return { ready: streams.length > 0 && streams.every((s) => s.ok), streams };
}

export type QueryFn = (sql: string, params: Record<string, unknown>) => Promise<Record<string, unknown>[]>;

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/**
 * Serves `collect()` as Prometheus text; `ready()` decides /readyz. With `query`, also
 * POST /api/v1/query for the CLI's read-only queries while this process holds the embedded
 * store: loopback clients only, one read-only statement only.
 */
export function metricsApp(collect: () => Family[], ready: () => { ready: boolean }, query?: QueryFn, web?: WebConfig, telemetryPath = '/metrics'): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Every path, health checks included, behind the web configuration's users (as exporters do).
  if (web?.users) app.use(basicAuth(web.users));
  if (web && Object.keys(web.headers).length > 0) {
    app.use((_req, res, next) => {
      for (const [name, value] of Object.entries(web.headers)) res.setHeader(name, value);
      next();
    });
  }
  if (query) {
    app.post('/api/v1/query', express.json({ limit: '1mb' }), async (req, res) => {
      if (!isLoopback(req.socket.remoteAddress)) {
        res.status(403).json({ error: 'queries are accepted from loopback only' });
        return;
      }
      const { sql, params } = req.body as { sql?: unknown; params?: unknown };
      const problem = typeof sql === 'string' ? readOnlyQueryProblem(sql) : 'the body must be {"sql": "<one read-only statement>"}';
      if (problem !== undefined || typeof sql !== 'string') {
        res.status(400).json({ error: problem });
        return;
      }
      try {
        res.json({ rows: await query(sql, (params ?? {}) as Record<string, unknown>) });
      } catch (error) {
        res.status(400).json({ error: errorText(error) });
      }
    });
  }
  app.get(telemetryPath, async (req, res) => {
    const gzipped = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
    res.setHeader('Content-Type', PROMETHEUS_CONTENT_TYPE);
    if (gzipped) res.setHeader('Content-Encoding', 'gzip');
    // Streamed in chunks, without an ETag: a scrape is never served from a cache.
    await writeScrape(collect(), res, gzipped).catch(() => res.destroy());
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const state = ready();
    res.status(state.ready ? 200 : 503).json(state);
  });
  app.get('/', (_req, res) => {
    res.type('text/plain').send(`tokenwatch\n\n${telemetryPath}  Prometheus metrics\n/healthz  liveness\n/readyz   readiness (every source stream polled without error)\n`);
  });
  return app;
}

/** The address could not be bound (in use, not permitted, not local). */
export class ListenError extends Error {
  readonly code: string | undefined;
  constructor(address: string, cause: NodeJS.ErrnoException) {
    const why: Record<string, string> = {
      EADDRINUSE: 'the address is already in use by another process',
      EACCES: 'permission denied (ports below 1024 need privileges)',
      EADDRNOTAVAIL: 'the host is not an address of this machine',
    };
    super(`cannot listen on ${address}: ${why[cause.code ?? ''] ?? cause.message} (${cause.code ?? 'error'})`, { cause });
    this.code = cause.code;
  }
}

/**
 * Binds the address and serves `app` on it (over TLS with `tls`); rejects with ListenError
 * when the address cannot be bound. (Not express's app.listen: in express 5 its callback also receives the bind
 * error, so a port in use looked like success.)
 */
export async function listen(app: express.Express, listenAddress: string, tls?: WebConfig['tls']): Promise<HttpServer> {
  const separator = listenAddress.lastIndexOf(':');
  const host = listenAddress.slice(0, separator) || '0.0.0.0';
  const port = Number(listenAddress.slice(separator + 1));
  const server: Server = tls ? createTlsServer(tls, app) : createServer(app);
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => reject(new ListenError(listenAddress, error));
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  const bound = server.address();
  const address = typeof bound === 'object' && bound ? `${bound.address}:${bound.port}` : listenAddress;
  return {
    server,
    address,
    async close() {
      // Scrapers keep connections alive: close them rather than wait for their idle timeout.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
