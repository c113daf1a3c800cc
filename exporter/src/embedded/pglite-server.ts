// The embedded demo database: PGlite (PostgreSQL compiled to WebAssembly) served over the
// PostgreSQL wire protocol on a loopback port, so tokenwatch reads it through the same `pg`
// code path as a real server. Created once in the state directory with the three source
// schemas and a few thousand sample rows; a small traffic generator keeps adding rows so a
// new user sees the pipeline move.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { sourceDdl } from './ddl.ts';
import { API_REQUEST_COLUMNS, SPEND_LOG_COLUMNS, apiRequestRows, insertRows, seedAll, spendLogRows } from './seed.ts';
import { SourceName } from '../model/events.ts';
import { freePortOnLoopback } from './ports.ts';

export interface EmbeddedDatabase {
  url: string;
  dataDir: string;
  /** Inserts a few new rows, as live traffic would. */
  addTraffic(): Promise<void>;
  close(): Promise<void>;
}

export async function startEmbeddedDatabase(stateDir: string, options: { port?: number } = {}): Promise<EmbeddedDatabase & { created: boolean }> {
  const dataDir = join(stateDir, 'embedded-postgres');
  const created = !existsSync(join(dataDir, 'PG_VERSION'));
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create({ dataDir });
  if (created) {
    for (const schema of SourceName.options) await db.exec(sourceDdl(schema));
    await seedAll({ query: (sql, params) => db.query(sql, params) });
  }
  const port = options.port ?? (await freePortOnLoopback());
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port, maxConnections: 16 });
  await server.start();
  let batch = 0;
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    dataDir,
    created,
    async addTraffic() {
      // Through a client connection, not db.query(): the socket server keeps each client's
      // transaction to itself, while db.query() would run inside whichever one is open.
      batch += 1;
      const seed = Date.now() % 1_000_000_000;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await insertRows(client, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(5, { seed, spanMs: 60_000, idPrefix: `live-${seed}-${batch}-` }));
        await insertRows(client, '"LiteLLM_SpendLogs"', SPEND_LOG_COLUMNS,
          spendLogRows(3, { seed: seed + 1, spanMs: 60_000 }).map((row) => [`live-${seed}-${batch}-${String(row[0])}`, ...row.slice(1)]));
      } finally {
        await client.end();
      }
    },
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
