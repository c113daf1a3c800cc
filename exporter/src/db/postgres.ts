// Connections to source databases. One pool per source. Reads run in READ ONLY transactions
// that set their time zone to UTC with SET LOCAL (never a session-wide SET: the embedded
// database multiplexes connections onto one session). `timestamp without time zone` values
// (LiteLLM) are read as UTC.
import pg from 'pg';

const TIMESTAMP_WITHOUT_TIME_ZONE = 1114;

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === TIMESTAMP_WITHOUT_TIME_ZONE && format !== 'binary') {
      return (value: string) => new Date(`${value.replace(' ', 'T')}Z`);
    }
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

export function createPool(connectionString: string, options: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 4,
    application_name: options.applicationName ?? 'tokenwatch',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    types: types as pg.CustomTypesConfig,
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  // Nor may a checked-out one (the server restarts in the middle of a poll): pg rejects the
  // running query with the error, which is what the caller handles, and also emits it as an
  // 'error' event, which with no listener would end the process.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/**
 * The planner's estimate of a table's rows (no count(*) scan). EXPLAIN rather than
 * pg_class.reltuples: for a table never vacuumed or analyzed reltuples is unknown, while the
 * planner still estimates from the table's size on disk (and scales an old reltuples to it).
 * `table` is a qualified, quoted name.
 */
export async function plannerRowEstimate(client: Pick<pg.ClientBase, 'query'>, table: string): Promise<number> {
  // SELECT 1, not *: a role granted only some columns may plan it.
  const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${table}`);
  return Math.max(0, Math.round(rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? 0));
}

/** Which of the given tables exist in the schema (by the names in the database). */
export async function existingTables(pool: pg.Pool, schema: string, tables: readonly string[]): Promise<Set<string>> {
  const { rows } = await pool.query<{ name: string }>(
    'SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND c.relkind IN (\'r\', \'p\', \'v\', \'m\', \'f\')',
    [schema, [...tables]],
  );
  return new Set(rows.map((r) => r.name));
}

/**
 * Opens the READ ONLY, REPEATABLE READ transaction every read runs in, and returns its
 * snapshot and clock. On a SQL_ASCII database (bytes stored unchecked) the client encoding
 * is set to SQL_ASCII for the transaction: otherwise one row holding bytes that are not
 * UTF-8 makes the server fail the whole query, and the stream would stop at that row. The
 * driver then decodes such bytes to U+FFFD, which the row mappers count as invalid_utf8.
 */
export async function beginRead(client: pg.ClientBase, options: { exportedSnapshot?: string } = {}): Promise<{ snapshot: string; now: string }> {
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL TIME ZONE 'UTC'");
  // Before any query of the transaction: it then sees exactly what that snapshot saw (a
  // replication slot's initial load).
  if (options.exportedSnapshot !== undefined) await client.query(`SET TRANSACTION SNAPSHOT '${options.exportedSnapshot.replace(/'/g, "''")}'`);
  const { rows } = await client.query<{ snapshot: string; now: string; encoding: string }>(
    "SELECT txid_current_snapshot()::text AS snapshot, now()::text AS now, current_setting('server_encoding') AS encoding",
  );
  const head = rows[0]!;
  if (head.encoding === 'SQL_ASCII') await client.query("SET LOCAL client_encoding TO 'SQL_ASCII'");
  return { snapshot: head.snapshot, now: head.now };
}

/**
 * Runs `read` in a read transaction of its own (beginRead) on a connection of `pool`,
 * committed when it returns and rolled back when it throws.
 */
export async function withReadTransaction<T>(pool: pg.Pool, read: (client: pg.PoolClient) => Promise<T>, options: { exportedSnapshot?: string } = {}): Promise<T> {
  const client = await pool.connect();
  try {
    await beginRead(client, options);
    const result = await read(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (error) {
    // A COPY cut short leaves the connection unusable: closed, not returned to the pool.
    client.release(error instanceof Error ? error : true);
    throw error;
  }
}
