// The source side of logical replication: the publication that names the tables tokenwatch
// reads, the replication slot that keeps their changes until tokenwatch confirms them, and
// what the slot costs the source (the WAL it retains). Both are named after the source, so
// `tokenwatch replication status|drop` and an operator's psql find them.
import pg from 'pg';
import { quoteIdent } from '../sql.ts';

/** "tokenwatch_<source name>", lower case, [a-z0-9_] only (slot names allow nothing else). */
export function replicationName(source: string): string {
  return `tokenwatch_${source.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

/** The application_name of a source's change stream connection (pg_stat_replication shows it). */
export function changeStreamApplicationName(source: string): string {
  return `tokenwatch/${source}/replication`;
}

/**
 * Tables among `tables` PostgreSQL could not replicate UPDATEs and DELETEs of: no primary key
 * and no other replica identity. Publishing one would make the application's own UPDATE and
 * DELETE statements on it fail, so tokenwatch refuses to.
 */
export async function withoutReplicaIdentity(db: pg.ClientBase | pg.Pool, tables: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ table: string }>(
    `SELECT t AS table FROM unnest($1::text[]) AS t JOIN pg_class c ON c.oid = t::regclass
     WHERE c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))`,
    [tables],
  );
  return rows.map((r) => r.table);
}

/** Creates the publication over `tables` (qualified, quoted SQL names) unless it exists; returns the tables it publishes. */
export async function ensurePublication(db: pg.ClientBase | pg.Pool, name: string, tables: readonly string[]): Promise<string[]> {
  const existing = await db.query<{ table: string }>(
    "SELECT format('%I.%I', schemaname, tablename) AS table FROM pg_publication_tables WHERE pubname = $1", [name],
  );
  const exists = (await db.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name])).rowCount! > 0;
  if (!exists) {
    await db.query(`CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables.join(', ')}`);
    return [...tables];
  }
  return existing.rows.map((r) => r.table);
}

export interface CreatedSlot {
  /** The WAL position the slot starts at: changes committed after it are streamed. */
  consistentPoint: string;
  /**
   * A snapshot of the database exactly at consistentPoint, for the initial load
   * (`SET TRANSACTION SNAPSHOT`). Valid until close().
   */
  snapshotName: string;
  close(): Promise<void>;
}

/**
 * Creates a pgoutput slot and exports its snapshot, on a replication connection that stays
 * open (the snapshot lives as long as it does): load under the snapshot, then close().
 */
export async function createSlot(connection: pg.ClientConfig, slot: string): Promise<CreatedSlot> {
  const client = new pg.Client({ ...connection, replication: 'database' } as pg.ClientConfig);
  await client.connect();
  try {
    const { rows } = await client.query<{ consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    return { consistentPoint: rows[0]!.consistent_point, snapshotName: rows[0]!.snapshot_name, close: () => client.end() };
  } catch (error) {
    await client.end();
    throw error;
  }
}

export interface SlotStatus {
  exists: boolean;
  active: boolean;
  /** What tokenwatch confirmed (changes before it can be removed from the WAL), and what the server has written. */
  confirmedLsn: string | null;
  currentLsn: string;
  /** WAL the slot keeps on the source's disk (current position minus the slot's restart position). */
  retainedBytes: number;
  /** Changes written but not confirmed yet (current position minus confirmed). */
  lagBytes: number;
  /** PostgreSQL's wal_status: reserved, extended, unreserved, lost (lost: the slot is invalidated). */
  walStatus: string | null;
}

export async function slotStatus(db: pg.ClientBase | pg.Pool, slot: string): Promise<SlotStatus> {
  const { rows } = await db.query<{ active: boolean; confirmed: string | null; current: string; retained: string | null; lag: string | null; wal_status: string | null }>(
    `SELECT s.active, s.confirmed_flush_lsn::text AS confirmed, c.lsn::text AS current,
       pg_wal_lsn_diff(c.lsn, s.restart_lsn)::text AS retained, pg_wal_lsn_diff(c.lsn, s.confirmed_flush_lsn)::text AS lag, s.wal_status
     FROM (SELECT pg_current_wal_lsn() AS lsn) c LEFT JOIN pg_replication_slots s ON s.slot_name = $1`,
    [slot],
  );
  const r = rows[0]!;
  return {
    exists: r.active !== null, active: r.active === true, confirmedLsn: r.confirmed, currentLsn: r.current,
    retainedBytes: Number(r.retained ?? 0), lagBytes: Number(r.lag ?? 0), walStatus: r.wal_status,
  };
}

/** Drops the slot (it must not be in use); false when there is none. */
export async function dropSlot(db: pg.ClientBase | pg.Pool, slot: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return (rowCount ?? 0) > 0;
}
