// A source writer for fault tests: inserts Claude Nexus Proxy rows continuously, the way the
// proxy does (one row per request, committed when the response ends), and keeps count of
// what was committed. It rides out a database that goes away: failed inserts are retried.
import pg from 'pg';

export interface Writer {
  /** Rows committed so far. */
  committed(): number;
  /** Inserts that failed (the database was down). */
  failures(): number;
  /** Stops after the insert in flight; resolves with the rows committed. */
  stop(): Promise<number>;
}

export function startWriter(url: string, options: { rowsPerInsert?: number; everyMs?: number; tenants?: number } = {}): Writer {
  const rowsPerInsert = options.rowsPerInsert ?? 5;
  const everyMs = options.everyMs ?? 100;
  const tenants = options.tenants ?? 5;
  let committed = 0;
  let failures = 0;
  let running = true;
  let n = 0;
  const loop = (async () => {
    let client: pg.Client | undefined;
    while (running) {
      try {
        if (!client) {
          client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
          client.on('error', () => undefined);
          await client.connect();
        }
        const base = n;
        await client.query(
          `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens, duration_ms)
           SELECT gen_random_uuid(), 'tenant-' || ((($1::int + i) % $3::int)) || '.example.com', now() - make_interval(secs => random()),
             'claude-sonnet-4-5-20250929', 'inference', CASE WHEN ($1::int + i) % 17 = 0 THEN 529 ELSE 200 END, 100 + ($1::int + i) % 50, ($1::int + i) % 300, 400 + ($1::int + i) % 900
           FROM generate_series(1, $2::int) AS i`,
          [base, rowsPerInsert, tenants],
        );
        n += rowsPerInsert;
        committed += rowsPerInsert;
      } catch {
        failures += 1;
        await client?.end().catch(() => undefined);
        client = undefined;
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
    await client?.end().catch(() => undefined);
  })();
  return {
    committed: () => committed,
    failures: () => failures,
    async stop() {
      running = false;
      await loop;
      return committed;
    },
  };
}
