// /metrics when the scraper hangs up in the middle of a large response (a scrape timeout,
// Prometheus stopping): the server goes on serving, and nothing is left unhandled, which in
// the real process would end it.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRICS } from '../metrics/catalog.ts';
import { Family } from '../metrics/families.ts';
import { freePortOnLoopback } from '../embedded/ports.ts';
import { listen, metricsApp, type HttpServer } from './server.ts';

/** 200,000 series, about 20 MB of text: far more than the socket buffers hold. */
function families(): Family[] {
  const family = new Family(METRICS.requests);
  for (let i = 0; i < 200_000; i++) family.set(METRICS.requests.labels.map((label) => `${label}-${i}`), i);
  return [family];
}

/** Sends a scrape request, reads the first `bytes` bytes of the answer, then resets the connection. */
function hangUpAfter(port: number, gzip: boolean, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = 0;
    socket.on('connect', () => socket.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: ${gzip ? 'gzip' : 'identity'}\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= bytes) {
        socket.pause();
        socket.resetAndDestroy();
        resolve(received);
      }
    });
    socket.on('error', reject);
  });
}

describe('/metrics with a scraper that hangs up', () => {
  let http: HttpServer;
  let port: number;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    const served = families();
    port = await freePortOnLoopback();
    http = await listen(metricsApp(() => served, () => ({ ready: true })), `127.0.0.1:${port}`);
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await http?.close();
  });

  it('goes on serving whole scrapes after scrapers hang up mid-response, with and without gzip', async () => {
    for (let round = 0; round < 5; round++) {
      expect(await hangUpAfter(port, true, 4096)).toBeGreaterThanOrEqual(4096);
      expect(await hangUpAfter(port, false, 64 * 1024)).toBeGreaterThanOrEqual(64 * 1024);
    }
    // Let the server notice the closed sockets and settle what it was writing.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(unhandled).toEqual([]);
    const plain = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { 'Accept-Encoding': 'identity' } });
    const text = await plain.text();
    expect(text.split('\n').filter((line) => line.startsWith('tokenwatch_requests_total{'))).toHaveLength(200_000);
    // fetch undoes the gzip itself.
    const zipped = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(zipped.headers.get('content-encoding')).toBe('gzip');
    expect(await zipped.text()).toBe(text);
  });
});

describe('/metrics of a usual size', () => {
  it('is written in one piece, and gives the same text with and without gzip, and with the text streamed', async () => {
    const family = new Family(METRICS.requests);
    for (let i = 0; i < 2_000; i++) family.set(METRICS.requests.labels.map((label) => `${label}-${i}`), i);
    const port = await freePortOnLoopback();
    const http = await listen(metricsApp(() => [family], () => ({ ready: true })), `127.0.0.1:${port}`);
    try {
      const plain = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { 'Accept-Encoding': 'identity' } });
      // One piece: its length is known, no chunked transfer.
      expect(plain.headers.get('transfer-encoding')).toBeNull();
      const text = await plain.text();
      expect(text.split('\n').filter((line) => line.startsWith('tokenwatch_requests_total{'))).toHaveLength(2_000);
      const zipped = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { 'Accept-Encoding': 'gzip' } });
      expect(zipped.headers.get('content-encoding')).toBe('gzip');
      expect(await zipped.text()).toBe(text);
    } finally {
      await http.close();
    }
  });
});
