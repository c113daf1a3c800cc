// A backfill of one stream at bulk speed (docs/event-store.md, "Backfill at bulk speed"):
// chunk by chunk, PostgreSQL COPY -> spool file -> ClickHouse staging, mapped to the stream's
// target table in ClickHouse; the rows only map() handles (not clean, or with more events than their
// request) are read again by id and go through the stream's row path. Used by `backfill`
// when the event store is the only sink and the table allows it.
import type pg from 'pg';
import type { CanonicalEvent } from '../model/events.ts';
import type { Logger } from '../log.ts';
import type { BulkContext, BulkSpec, NamedSource } from '../sources/adapter.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import type { Sink } from '../sinks/sink.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { BulkLoader, SLOTS, lookupKnownSql, lookupSql, type BulkLoaderOptions, type BulkTransport } from '../store/bulk-load.ts';
import { copyToFile } from '../db/copy-to-file.ts';
import { quoteIdent, unquoteIdent } from '../reader/sql.ts';
import { idTypeOf } from './reconcile.ts';
import type { StreamRunner } from './stream-runner.ts';
import type { ChunkStages } from '../reader/chunked-read.ts';

/** The ClickHouse sink a bulk backfill of this stream writes through, or undefined for row by row (logged why). */
export async function bulkSinkFor(pool: pg.Pool, runner: StreamRunner, sinks: readonly Sink[], enabled: boolean, logger: Logger): Promise<ClickHouseSink | undefined> {
  if (!enabled || runner.stream.bulk === undefined) return undefined;
  if (sinks.length !== 1 || !(sinks[0] instanceof ClickHouseSink)) return undefined;
  // COPY text is passed to ClickHouse as bytes: only a UTF-8 database guarantees valid text
  // (map() repairs other bytes and counts them).
  const { rows } = await pool.query<{ encoding: string }>("SELECT current_setting('server_encoding') AS encoding");
  if (rows[0]?.encoding !== 'UTF8') {
    logger.info({ stream: runner.id, encoding: rows[0]?.encoding }, 'bulk backfill needs a UTF8 database: reading row by row');
    return undefined;
  }
  // Chunks are mapped and counted in ClickHouse, which cannot see two copies of a row:
  // only an id the database keeps unique makes that safe (the proxy's primary key).
  const { table, idColumn } = runner.stream.spec;
  const unique = await pool.query<{ unique: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
       WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indnatts = 1 AND i.indpred IS NULL AND a.attname = $2) AS unique`,
    [table, unquoteIdent(idColumn)],
  );
  if (unique.rows[0]?.unique !== true) {
    logger.info({ stream: runner.id }, `bulk backfill needs a unique index on ${idColumn}: reading row by row`);
    return undefined;
  }
  return sinks[0];
}

/** The BulkLoader options a stream's bulk spec gives, for one backfill's context. */
export function loaderSettings(spec: BulkSpec, ctx: BulkContext): Pick<BulkLoaderOptions, 'structure' | 'target' | 'rowId' | 'derived' | 'mapping' | 'clean' | 'otherEvents'> {
  return {
    structure: spec.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', '),
    target: spec.target, rowId: spec.rowId, derived: spec.derived(ctx), mapping: spec.mapping(ctx), clean: spec.clean(ctx), otherEvents: spec.otherEvents,
  };
}

export interface BulkPollDeps {
  sink: ClickHouseSink;
  source: NamedSource;
  pool: pg.Pool;
  context: Omit<BulkContext, 'models' | 'lookup' | 'lookupKnown'>;
  chunkRows: number;
  metrics: MetricsRegistry | undefined;
  logger: Logger;
  /** Writes the events of the rows the bulk path leaves to map() (every sink). */
  emit(events: CanonicalEvent[]): Promise<void>;
  /** Events the bulk path wrote itself, for the sink's status. */
  written(events: number): void;
  transport?: BulkTransport;
}

interface Copied { file: string; rows: number }
interface Loaded { slot: number; rows: number; rest: { id: string; clean: boolean }[]; loadMs: number }
type BulkStages = ChunkStages<Copied, Loaded, Loaded & { restEvents: CanonicalEvent[] }>;
/** Hands a stream's rows to the bulk stages, chunk by chunk (readInChunks, in some transaction). */
export type BulkRead<T> = (stages: BulkStages, options: { chunkRows: number; slots: number }) => Promise<T>;

/** One poll of a stream through its bulk path, chunk by chunk; returns the rows read. */
export async function pollBulk(runner: StreamRunner, deps: BulkPollDeps, onPage: (rows: number) => void): Promise<number> {
  return bulkRead(runner, deps, onPage, (stages, options) => runner.track(async () => {
    const swept = await runner.sweepIfDue(runner.pageHandler(onPage));
    const result = await runner.reader.pollInChunks(stages, options);
    return { ...result, rows: result.rows + swept };
  }));
}

/**
 * A stream's rows through its bulk path: PostgreSQL COPY -> spool file -> ClickHouse staging,
 * mapped there, for the chunks `read` hands over; returns what `read` returns.
 */
export async function bulkRead<T>(runner: StreamRunner, deps: BulkPollDeps, onPage: (rows: number) => void, read: BulkRead<T>): Promise<T> {
  const { stream, status } = runner;
  const spec = stream.bulk!;
  const id = runner.id;
  const { sink } = deps;
  const started = performance.now();
  // Requests: one pass over the table for its models, so the ClickHouse cost covers them all (pricing.ts).
  const models = spec.models === undefined ? [] : (await deps.pool.query<{ model: string; provider: string | null }>(
    `SELECT DISTINCT ${spec.models.model} AS model, ${spec.models.provider ?? 'NULL::text'} AS provider FROM ${stream.spec.table} t WHERE ${spec.models.model} IS NOT NULL`,
  )).rows;
  // Lookups: each small table read once, looked up in ClickHouse instead of a subquery per row.
  const lookups: Record<string, { key: string; value: string }[]> = {};
  for (const [name, sql] of Object.entries(spec.lookups ?? {})) {
    lookups[name] = (await deps.pool.query<{ key: string | null; value: string | null }>(sql)).rows
      .filter((r): r is { key: string; value: string } => r.key !== null && r.value !== null);
  }
  const database = sink.store.database;
  const ctx: BulkContext = {
    ...deps.context, models, lookup: (name, key) => lookupSql(database, id, name, key), lookupKnown: (name, key) => lookupKnownSql(database, id, name, key),
  };
  const readMs = performance.now() - started;
  const loadStore = await sink.store.connectAgain();
  const aggregateStore = await sink.store.connectAgain().catch(async (error: unknown) => {
    await loadStore.close();
    throw error;
  });
  const loader = await BulkLoader.open({
    store: sink.store, loadStore, aggregateStore, streamId: id, source: deps.source.type, transport: deps.transport, lookups, ...loaderSettings(spec, ctx),
  }).catch(async (error: unknown) => {
    await loadStore.close();
    await aggregateStore.close();
    throw error;
  });
  const columns = spec.columns.map((c) => `${c.sql} AS ${quoteIdent(c.name)}`).join(', ');
  let idType: string | undefined;
  try {
    deps.logger.debug({ stream: id, modelsAndLookupsMs: Math.round(readMs), openMs: Math.round(performance.now() - started - readMs) }, 'bulk backfill set up');
    return await read({
      // PostgreSQL -> spool file, on the poll's connection.
      copy: async (chunk) => {
        const file = loader.spoolFile();
        const rows = await copyToFile(chunk.client, `COPY (SELECT ${columns} FROM ${stream.spec.table} t WHERE ${chunk.where}) TO STDOUT`, file);
        return { file, rows };
      },
      // File -> ClickHouse staging, mapped, while the next chunk is copied.
      load: async ({ file }, index) => {
        const slot = index % SLOTS;
        const started = performance.now();
        const rows = await loader.load(slot, file);
        return { slot, rows, rest: await loader.rest(slot), loadMs: performance.now() - started };
      },
      // The rows map() has to see, read again by id on the poll's connection.
      rest: async (chunk, loaded) => ({
        ...loaded,
        restEvents: loaded.rest.length === 0 ? [] : await chunk.withClient(async (client) => mapRestOfChunk(runner, client, loaded.rest, (idType ??= await idTypeOf(client, stream)), deps.emit)),
      }),
      // Commit, and the metrics of the whole chunk, in chunk order.
      finish: async ({ rows, slot, rest, restEvents, loadMs }) => {
        const started = performance.now();
        // The aggregate reads the staged chunk while it commits (on its own connection); the
        // increments are recorded once the chunk is committed.
        const [, increments] = await Promise.all([loader.commit(slot), loader.aggregate(slot)]);
        deps.metrics?.recordRequestGroups(id, increments.requests);
        deps.metrics?.recordCounterGroups(id, increments.counters);
        deps.metrics?.recordStream(id, restEvents);
        const bulkEvents = rows - rest.filter((r) => !r.clean).length;
        status.rowsRead += rows;
        status.rowsBulk += bulkEvents;
        status.eventsEmitted += bulkEvents + restEvents.length;
        deps.written(bulkEvents);
        onPage(rows);
        deps.logger.debug(
          { stream: id, rows, rowByRow: rest.length, loadMs: Math.round(loadMs), commitMs: Math.round(performance.now() - started) },
          'bulk chunk',
        );
      },
    }, { chunkRows: deps.chunkRows, slots: SLOTS });
  } finally {
    await loader.close().catch(() => undefined);
    await loadStore.close().catch(() => undefined);
    await aggregateStore.close().catch(() => undefined);
  }
}

/**
 * The rows of a chunk the bulk path does not finish, read again by id in the chunk's
 * transaction and mapped: rows that are not clean in full (requests included), clean rows
 * only for their other events (their request is stored already).
 */
async function mapRestOfChunk(runner: StreamRunner, client: pg.PoolClient, rest: { id: string; clean: boolean }[], idType: string, emit: (events: CanonicalEvent[]) => Promise<void>): Promise<CanonicalEvent[]> {
  const { stream } = runner;
  const { table, idColumn, selectList, batchSize } = stream.spec;
  const clean = new Map(rest.map((r) => [r.id, r.clean]));
  // Kept for the metrics, recorded when the chunk finishes; content is not needed there.
  const forMetrics: CanonicalEvent[] = [];
  for (let i = 0; i < rest.length; i += batchSize) {
    const ids = rest.slice(i, i + batchSize).map((r) => r.id);
    // = ANY of the column's own type, so the primary key index is used.
    const page = await client.query(`SELECT ${selectList} FROM ${table} t WHERE t.${idColumn} = ANY($1::${idType}[])`, [ids]);
    const events = runner.mapRows(page.rows, (row) => clean.get(stream.rowId(row)) !== true);
    await emit(events);
    for (const e of events) forMetrics.push(e.kind === 'message' ? { ...e, content: '' } : e);
  }
  return forMetrics;
}
