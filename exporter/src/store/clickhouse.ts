// The ClickHouse event store: a server through @clickhouse/client when clickhouse.url is set,
// otherwise the embedded engine (chdb) through its @clickhouse/client connection, in
// stateDir/clickhouse. Both paths use the same client API. chdb keeps settings passed with one
// call on its session (they leak into later calls), so no call here passes per-query settings.
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { join } from 'node:path';
import { mkdirSync, readFileSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import { migrate, type CommandRunner } from './migrations.ts';

export interface EventStore extends CommandRunner {
  client: ClickHouseClient;
  database: string;
  embedded: boolean;
  /** The cluster of a clustered server deployment (Distributed tables over <table>_local). */
  cluster: string | undefined;
  /** Where the embedded store lives, or the server URL without credentials. */
  location: string;
  insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void>;
  query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  migrate(): Promise<string[]>;
  /** Another connection to the same store, for statements that must run alongside this one's. */
  connectAgain(): Promise<EventStore>;
  close(): Promise<void>;
}

/** The embedded engine (optional package chdb) is not installed. */
export class StoreUnavailable extends Error {}
/** The embedded store is open in another process (chdb allows one process per directory). */
export class StoreLocked extends Error {}

async function embeddedClient(path: string): Promise<ClickHouseClient> {
  let createChdbConnection: (typeof import('chdb/connection'))['createChdbConnection'];
  try {
    ({ createChdbConnection } = await import('chdb/connection'));
  } catch (error) {
    throw new StoreUnavailable(`the embedded ClickHouse engine (npm package chdb) is not available: ${(error as Error).message}; install it or set CLICKHOUSE_URL`, { cause: error });
  }
  mkdirSync(path, { recursive: true });
  // Asked first, so that the engine does not print its own "Cannot lock file" error.
  const holder = processHolding(path);
  if (holder !== undefined) throw new StoreLocked(`the embedded ClickHouse store in ${path} is in use by process ${holder} (probably a running tokenwatch)`);
  let connection: unknown;
  try {
    connection = createChdbConnection({ path });
  } catch (error) {
    throw new StoreLocked(`cannot open the embedded ClickHouse store in ${path} (${(error as Error).message}): another tokenwatch process is probably using it`, { cause: error });
  }
  return createClient({ connection } as Parameters<typeof createClient>[0]);
}

/**
 * The live process (other than this one) that has the embedded store at `path` open: the
 * engine writes its PID into the `status` file it locks.
 */
function processHolding(path: string): number | undefined {
  let pid: number;
  try {
    pid = Number(/^PID: (\d+)/m.exec(readFileSync(join(path, 'status'), 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: alive, but another user's.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/**
 * The embedded engine's merge selector base (ClickHouse's default is 5). The reader in mode:
 * replication inserts every few tens of milliseconds, each insert a small part per table, and
 * with the default selector each new part was merged again and again into the growing one:
 * 2,400 inserts of 25 rows in a minute rewrote 14M rows, merging for 40-49 s of that minute in
 * this process, beside the reader. At 10 it rewrote 3.2M in 14-16 s, for up to 10 parts per
 * partition. A server's tables are left to their operator's settings.
 */
const EMBEDDED_MERGE_SELECTOR_BASE = 10;

/** Checked on every start, like the content TTL (a setting, not a schema version); set where missing. */
async function lessMergingInProcess(store: EventStore): Promise<void> {
  const tables = await store.query<{ name: string }>(
    "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' AND NOT match(create_table_query, {set:String})",
    { db: store.database, set: `merge_selector_base = ${EMBEDDED_MERGE_SELECTOR_BASE}\\b` },
  );
  for (const { name } of tables) await store.command(`ALTER TABLE ${store.database}.${name} MODIFY SETTING merge_selector_base = ${EMBEDDED_MERGE_SELECTOR_BASE}`);
}

export async function openStore(config: Config): Promise<EventStore> {
  const { url, database, cluster } = config.clickhouse;
  const embedded = url === undefined;
  const path = join(config.stateDir, 'clickhouse');
  const client = embedded ? await embeddedClient(path) : createClient({ url, request_timeout: 60_000 });
  const location = embedded ? path : (() => { const u = new URL(url); u.username = ''; u.password = ''; return u.toString(); })();
  const store: EventStore = {
    client,
    database,
    embedded,
    cluster: embedded ? undefined : cluster,
    location,
    async command(sql) {
      await client.command({ query: sql });
    },
    async queryJson<T>(sql: string) {
      const result = await client.query({ query: sql, format: 'JSONEachRow' });
      return (await result.json()) as T[];
    },
    async query<T>(sql: string, params: Record<string, unknown> = {}) {
      const result = await client.query({ query: sql, query_params: params, format: 'JSONEachRow' });
      return (await result.json()) as T[];
    },
    async insert(table, rows) {
      if (rows.length === 0) return;
      await client.insert({ table: `${database}.${table}`, values: rows as Record<string, unknown>[], format: 'JSONEachRow' });
    },
    async migrate() {
      const applied = await migrate(store, { database, cluster: embedded ? undefined : cluster });
      const ttl = config.clickhouse.contentTtlDays;
      // Content TTL is a setting, not a schema version: applied (or removed) on every start.
      await store.command(
        ttl === undefined
          ? `ALTER TABLE ${database}.messages${embedded || !cluster ? '' : '_local'} MODIFY COLUMN content REMOVE TTL`
          : `ALTER TABLE ${database}.messages${embedded || !cluster ? '' : '_local'} MODIFY COLUMN content String CODEC(ZSTD(3)) TTL toDateTime(created_at) + INTERVAL ${ttl} DAY`,
      ).catch((error: unknown) => {
        // REMOVE TTL on a column without one is an error on some versions: nothing to remove.
        if (ttl !== undefined) throw error;
      });
      if (embedded) await lessMergingInProcess(store);
      return applied;
    },
    connectAgain: () => openStore(config),
    async close() {
      await client.close();
    },
  };
  return store;
}
