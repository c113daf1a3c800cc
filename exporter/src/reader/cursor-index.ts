// Whether a stream's cursor column has an index. Several real tables have none (LiteLLM's
// error log, Sidekick Forge's conversations and transcripts): each incremental read of such a
// table is a sequential scan, so the runner reads it less often until the index exists, and
// `check` prints the statement that creates it.
import type pg from 'pg';
import type { IncrementalStreamSpec } from './incremental-reader.ts';
import { unquoteIdent } from './sql.ts';

/** True when an index of the table (not a partial one) starts with the cursor column. */
export async function hasCursorIndex(db: Pick<pg.Pool, 'query'>, spec: Pick<IncrementalStreamSpec, 'table' | 'cursorColumn'>): Promise<boolean> {
  const { rows } = await db.query<{ indexed: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
       WHERE i.indrelid = $1::regclass AND a.attname = $2 AND i.indpred IS NULL AND i.indisvalid) AS indexed`,
    [spec.table, unquoteIdent(spec.cursorColumn)],
  );
  return rows[0]?.indexed === true;
}

/** Ids of the streams (of those that declare a slower interval for it) whose cursor column has no index. */
export async function unindexedCursors(db: Pick<pg.Pool, 'query'>, streams: readonly { spec: IncrementalStreamSpec; unindexedIntervalMs?: number }[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const { spec, unindexedIntervalMs } of streams) {
    if (unindexedIntervalMs !== undefined && !(await hasCursorIndex(db, spec))) out.add(spec.id);
  }
  return out;
}

/** The statement that creates the index, quoted as psql needs it. */
export function indexStatement(spec: Pick<IncrementalStreamSpec, 'table' | 'cursorColumn'>): string {
  return `CREATE INDEX CONCURRENTLY ON ${spec.table} (${spec.cursorColumn});`;
}
