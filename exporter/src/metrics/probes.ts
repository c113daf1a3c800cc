// Dependency probes: is each PostgreSQL source, the ClickHouse store and every configured
// HTTP dependency (a LiveKit server, the upstream LLM API) answering, and how fast.
import pg from 'pg';
import type { ProbeResult } from './registry.ts';

export interface Probe {
  name: string;
  kind: string;
  check(timeoutMs: number): Promise<void>;
}

export function postgresProbe(name: string, url: string): Probe {
  return {
    name,
    kind: 'postgresql',
    async check(timeoutMs) {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
      client.on('error', () => undefined);
      await client.connect();
      try {
        await client.query('SELECT 1');
      } finally {
        await client.end().catch(() => undefined);
      }
    },
  };
}

/** A ClickHouse server answers "Ok." on /ping of its HTTP interface. */
export function clickhouseProbe(name: string, url: string): Probe {
  const target = new URL('/ping', url);
  target.username = '';
  target.password = '';
  return {
    name,
    kind: 'clickhouse',
    async check(timeoutMs) {
      const response = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
      const text = await response.text();
      if (!response.ok || !text.startsWith('Ok')) throw new Error(`ClickHouse /ping answered ${response.status} ${text.slice(0, 40)}`);
    },
  };
}

/** Up when the URL answers at all below HTTP 500 (a 401 from an API still means it is up). */
export function httpProbe(name: string, url: string, kind: string, bearerToken?: string): Probe {
  const headers = bearerToken === undefined ? undefined : { authorization: `Bearer ${bearerToken}` };
  return {
    name,
    kind,
    async check(timeoutMs) {
      const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual', headers });
      await response.body?.cancel();
      if (response.status >= 500) throw new Error(`HTTP ${response.status}`);
    },
  };
}

export class ProbeRunner {
  private readonly probes: Probe[];
  private readonly results = new Map<string, ProbeResult>();
  private timer: NodeJS.Timeout | undefined;

  constructor(probes: Probe[]) {
    this.probes = probes;
  }

  async runOnce(timeoutMs: number): Promise<void> {
    await Promise.all(
      this.probes.map(async (probe) => {
        const started = performance.now();
        let up = true;
        try {
          await probe.check(timeoutMs);
        } catch {
          up = false;
        }
        this.results.set(`${probe.name}\u0001${probe.kind}`, { name: probe.name, kind: probe.kind, up, durationSeconds: (performance.now() - started) / 1000 });
      }),
    );
  }

  start(intervalMs: number, timeoutMs: number): void {
    const tick = () => {
      void this.runOnce(timeoutMs).finally(() => {
        this.timer = setTimeout(tick, intervalMs);
      });
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  snapshot(): ProbeResult[] {
    return [...this.results.values()];
  }
}
