// A source writer for fault tests: writes Claude Nexus Proxy rows continuously and keeps
// count of what was committed. By default each row is inserted whole; with `inSteps` the way
// the proxy's storage writer does it (services/proxy/src/storage/writer.ts): INSERT without
// the response, UPDATE with it, and for one request in three an UPDATE with its Task tool
// invocations, each its own transaction. It rides out a database that goes away: failed
// inserts are retried.
import pg from 'pg';

export interface Writer {
  /** Rows committed so far. */
  committed(): number;
  /** Inserts that failed (the database was down). */
  failures(): number;
  /** Stops after the insert in flight; resolves with the rows committed. */
  stop(): Promise<number>;
}

export function startWriter(url: string, options: { rowsPerInsert?: number; everyMs?: number; tenants?: number; inSteps?: boolean } = {}): Writer {
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
        if (options.inSteps) {
          const { rows } = await client.query<{ id: string }>(
            `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type)
             SELECT gen_random_uuid(), 'tenant-' || ((($1::int + i) % $3::int)) || '.example.com', now(), 'claude-sonnet-4-5-20250929', 'inference'
             FROM generate_series(1, $2::int) AS i RETURNING request_id::text AS id`,
            [base, rowsPerInsert, tenants],
          );
          n += rowsPerInsert;
          committed += rowsPerInsert;
          for (const [i, { id }] of rows.entries()) {
            const k = base + i;
            await client.query(
              `UPDATE api_requests SET response_status = $2, input_tokens = $3, output_tokens = $4, duration_ms = $5 WHERE request_id = $1`,
              [id, k % 17 === 0 ? 529 : 200, 100 + (k % 50), k % 300, 400 + (k % 900)],
            );
            if (k % 3 === 0) await client.query(`UPDATE api_requests SET task_tool_invocation = '[{"name":"Task"}]' WHERE request_id = $1`, [id]);
          }
          await new Promise((resolve) => setTimeout(resolve, everyMs));
          continue;
        }
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
