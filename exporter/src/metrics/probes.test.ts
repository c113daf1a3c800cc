import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeRunner, clickhouseProbe, httpProbe, postgresProbe } from './probes.ts';
import { clusterUrl } from '../testing/databases.ts';
import { freePortOnLoopback } from '../embedded/ports.ts';

describe('dependency probes', () => {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/broken' ? 503 : req.url === '/auth' ? 401 : 200);
    // Stands in for a ClickHouse server's HTTP interface, which answers /ping with "Ok.".
    res.end(req.url === '/ping' ? 'Ok.\n' : 'ok');
  });
  let base: string;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => {
    server.close();
  });

  it('reports up, down and response time for PostgreSQL and HTTP dependencies', async () => {
    const closed = await freePortOnLoopback();
    const runner = new ProbeRunner([
      postgresProbe('pg-ok', clusterUrl()),
      postgresProbe('pg-down', `postgres://postgres@127.0.0.1:${closed}/postgres`),
      httpProbe('livekit', `${base}/`, 'livekit'),
      httpProbe('upstream', `${base}/auth`, 'http'),
      httpProbe('broken', `${base}/broken`, 'http'),
      httpProbe('gone', `http://127.0.0.1:${closed}/`, 'http'),
      clickhouseProbe('ch', `http://default:secret@127.0.0.1:${(server.address() as { port: number }).port}`),
      clickhouseProbe('ch-down', `http://127.0.0.1:${closed}`),
    ]);
    await runner.runOnce(2000);
    const up = Object.fromEntries(runner.snapshot().map((r) => [r.name, r.up]));
    expect(up).toEqual({ 'pg-ok': true, 'pg-down': false, livekit: true, upstream: true, broken: false, gone: false, ch: true, 'ch-down': false });
    for (const result of runner.snapshot()) expect(result.durationSeconds).toBeGreaterThan(0);
  });
});
