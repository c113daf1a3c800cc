// The embedded demo database: PGlite (PostgreSQL compiled to WebAssembly) served over the
// PostgreSQL wire protocol on a loopback port, so tokenwatch reads it through the same `pg`
// code path as a real server. Created once in the state directory with the three source
// schemas and a day of simulated traffic (exporter/src/simulate/); live simulated traffic
// keeps arriving while `run` runs, so a new user sees the pipeline move.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { lockDirectory } from './dir-lock.ts';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { SourceName } from '../model/events.ts';
import { freePortOnLoopback } from './ports.ts';
import { Simulator } from '../simulate/simulator.ts';
import { PGliteWireServer } from './wire-server.ts';

/** The demo: a day of history at this many Claude Nexus Proxy requests per second, then live traffic at DEMO_LIVE_RATE. */
export const DEMO_HISTORY_DAYS = 1;
export const DEMO_HISTORY_RATE = 0.15;
export const DEMO_LIVE_RATE = 1;
export const DEMO_SEED = 1;

export interface EmbeddedDatabase {
  url: string;
  dataDir: string;
  /** Starts live simulated traffic into the database (until close()). */
  startTraffic(rate: number, onError: (error: unknown) => void): void;
  close(): Promise<void>;
}

/**
 * Opens (creating and populating on first use) the demo database. It is made in a directory of
 * its own and moved into place only when whole, so a start cut short (a signal, a crash) leaves
 * nothing the next start would read as a partial day; that start makes it again. An aborted
 * `signal` stops the population between slices, and stops waiting for PGlite's initdb (about
 * 5 s of WebAssembly that cannot be interrupted; the process is ending anyway).
 */
export async function startEmbeddedDatabase(stateDir: string, options: { port?: number; populate?: boolean; signal?: AbortSignal } = {}): Promise<EmbeddedDatabase & { created: boolean }> {
  const dataDir = join(stateDir, 'embedded-postgres');
  mkdirSync(stateDir, { recursive: true });
  const release = lockDirectory(stateDir, 'the embedded demo database');
  const created = !existsSync(join(dataDir, 'PG_VERSION'));
  let db: PGlite;
  try {
    if (created) await createDatabase(dataDir, options.populate !== false, options.signal);
    db = await PGlite.create({ dataDir });
  } catch (error) {
    release();
    throw error;
  }
  const port = options.port ?? (await freePortOnLoopback());
  const server = new PGliteWireServer(db);
  await server.listen(port);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let traffic: { simulator: Simulator; pool: pg.Pool } | undefined;
  return {
    url,
    dataDir,
    created,
    startTraffic(rate, onError) {
      // Through a client connection, not db.query(): the socket server keeps each client's
      // transaction to itself, while db.query() would run inside whichever one is open.
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      pool.on('error', () => undefined);
      const simulator = new Simulator(pool, { seed: DEMO_SEED, trafficSeed: Date.now() % 1_000_000_007, rate, sources: SourceName.options, onError });
      simulator.start();
      traffic = { simulator, pool };
    },
    async close() {
      await traffic?.simulator.stop();
      await traffic?.pool.end();
      await server.close();
      await db.close();
      release();
    },
  };
}

/** Creations abandoned to a signal whose initdb still runs in this process (their directories are theirs until it ends). */
const abandoned = new Set<string>();

/** A new demo database at `dataDir`, made in `<dataDir>.creating-<id>` and renamed when whole. */
async function createDatabase(dataDir: string, populate: boolean, signal: AbortSignal | undefined): Promise<void> {
  signal?.throwIfAborted();
  // What an earlier start cut short, and a directory without PG_VERSION (a creation cut short
  // before databases were made aside).
  const parent = dirname(dataDir);
  for (const name of readdirSync(parent)) {
    const path = join(parent, name);
    if (name.startsWith(`${basename(dataDir)}.creating`) && !abandoned.has(path)) rmSync(path, { recursive: true, force: true });
  }
  rmSync(dataDir, { recursive: true, force: true });
  const creating = `${dataDir}.creating-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(creating, { recursive: true });
  const initdb = PGlite.create({ dataDir: creating });
  let db: PGlite;
  try {
    db = await abortable(initdb, signal);
  } catch (error) {
    // initdb runs on: closed and removed once it ends (the process usually ends first).
    abandoned.add(creating);
    void initdb.then((d) => d.close(), () => undefined).finally(() => {
      rmSync(creating, { recursive: true, force: true });
      abandoned.delete(creating);
    }).catch(() => undefined);
    throw error;
  }
  try {
    if (populate) {
      // Straight into PGlite, before any client connects (DDL through exec: several statements).
      const simulator = new Simulator({ query: (sql, params) => (params?.length ? db.query(sql, params) : db.exec(sql)) }, { seed: DEMO_SEED, rate: DEMO_HISTORY_RATE, sources: SourceName.options });
      await simulator.setup();
      await simulator.history(DEMO_HISTORY_DAYS, undefined, signal);
    }
  } catch (error) {
    await db.close().catch(() => undefined);
    rmSync(creating, { recursive: true, force: true });
    throw error;
  }
  await db.close();
  renameSync(creating, dataDir);
}

/** `work`, or the signal's reason as soon as it is aborted (`work` runs on, unawaited). */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}
