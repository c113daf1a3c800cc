// Connecting a source: its pool, its tables checked, its parts (other databases it reads, each
// a source of its own) resolved, its streams and snapshots built, and which cursor columns
// lack an index. A source that cannot be used yet fails with SourceUnavailable, which `run`
// waits out (source-retry.ts) and `backfill` and `check` report.
import type pg from 'pg';
import { errorText } from '../log.ts';
import { createPool, existingTables } from '../db/postgres.ts';
import { adapterFor } from '../sources/registry.ts';
import type { IncrementalStream, NamedSource, SnapshotQuery, SourceAdapter } from '../sources/adapter.ts';
import { unindexedCursors } from '../reader/cursor-index.ts';
import { newStreamStatus, type StreamStatus } from './status.ts';

/** Why a source could not be added: its database is unreachable, or its tables are missing. */
export class SourceUnavailable extends Error {
  readonly missingTables: boolean;
  constructor(message: string, missingTables: boolean, cause?: unknown) {
    super(message, { cause });
    this.missingTables = missingTables;
  }
}

export interface ConnectedSource {
  /** The configuration, with the tenants of its parts (NamedSource.partTenants) when it has parts. */
  config: NamedSource;
  adapter: SourceAdapter;
  pool: pg.Pool;
  built: ReturnType<SourceAdapter['build']>;
  /** Ids of the streams whose cursor column has no index. */
  unindexed: ReadonlySet<string>;
  /** The other databases the source reads, to be added as sources of their own. */
  parts: NamedSource[];
  /** Columns the adapter reads that this database's schema version does not have (read as NULL). */
  absent: string[];
}

/**
 * The columns the adapter reads that are in none of the tables that read them: an older
 * version of the source's schema (docs/sources.md lists the versions). They are read as NULL,
 * as if the configuration marked them absent; a column the configuration names is left as
 * configured, and a required one still fails with its name when the streams are built.
 */
export async function absentColumns(db: pg.Pool | pg.ClientBase, config: NamedSource, adapter: SourceAdapter): Promise<string[]> {
  const physical = (reference: string) => config.tables[reference] ?? reference;
  const tables = adapter.requiredTables(config).filter((t) => adapter.reads[t] !== undefined);
  const { rows } = await db.query<{ table: string; column: string }>(
    `SELECT c.relname AS table, a.attname AS column FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND NOT a.attisdropped`,
    [config.schema, tables.map(physical)],
  );
  const present = new Set(rows.map((r) => `${r.table}.${r.column}`));
  const references = new Set(tables.flatMap((t) => adapter.reads[t]!));
  return [...references].filter((column) => {
    if (column in config.columns) return false;
    const readers = tables.filter((t) => adapter.reads[t]!.includes(column));
    return readers.every((t) => !present.has(`${physical(t)}.${column}`));
  }).sort();
}

/** Connects `config` and checks it can be read; throws SourceUnavailable naming what is wrong. */
export async function connectSource(config: NamedSource): Promise<ConnectedSource> {
  const adapter = adapterFor(config.type);
  const pool = createPool(config.databaseUrl!, { applicationName: `tokenwatch/${config.name}` });
  const fail = async (error: SourceUnavailable): Promise<never> => {
    await pool.end();
    throw error;
  };
  const wanted = adapter.requiredTables(config).map((t) => config.tables[t] ?? t);
  let present: Set<string>;
  try {
    present = await existingTables(pool, config.schema, wanted);
  } catch (error) {
    return fail(new SourceUnavailable(`source ${config.name}: cannot connect to PostgreSQL: ${errorText(error)}`, false, error));
  }
  const missing = wanted.filter((t) => !present.has(t));
  if (missing.length > 0) return fail(new SourceUnavailable(`source ${config.name} (${config.type}): tables not found in schema "${config.schema}": ${missing.join(', ')}`, true));
  let parts: NamedSource[];
  try {
    parts = (await adapter.parts?.(config, pool)) ?? [];
  } catch (error) {
    return fail(new SourceUnavailable(errorText(error), false, error));
  }
  if (parts.length > 0) config = { ...config, partTenants: parts.flatMap((p) => (p.clientOf ? [p.clientOf.tenant] : [])) };
  try {
    const absent = await absentColumns(pool, config, adapter);
    if (absent.length > 0) config = { ...config, columns: { ...config.columns, ...Object.fromEntries(absent.map((c) => [c, null])) } };
    const built = adapter.build(config);
    return { config, adapter, pool, built, unindexed: await unindexedCursors(pool, built.streams), parts, absent };
  } catch (error) {
    return fail(new SourceUnavailable(`source ${config.name}: ${errorText(error)}`, false, error));
  }
}

export function newStatus(id: string, source: NamedSource, table: string, kind: StreamStatus['kind'], spec?: IncrementalStream['spec']): StreamStatus {
  return newStreamStatus({
    id, source: source.name, sourceType: source.type, table, kind,
    ...(spec ? { maxCommitDelayMs: spec.maxCommitDelayMs, sweepWindowMs: spec.sweepWindowMs ?? 0 } : {}),
  });
}

/** Snapshot queries are named by their id (two may read the same table). */
export function snapshotTable(query: SnapshotQuery): string {
  return query.id.slice(query.id.indexOf('/') + 1);
}

/** The statuses a source's streams and snapshots will have, before it is connected. */
export function plannedStatuses(config: NamedSource): StreamStatus[] {
  const built = adapterFor(config.type).build(config);
  return [
    ...built.streams.map((s) => newStatus(s.spec.id, config, s.table, 'incremental', s.spec)),
    ...built.snapshots.map((q) => newStatus(q.id, config, snapshotTable(q), 'snapshot')),
  ];
}
