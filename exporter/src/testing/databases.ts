// Per-test-file databases in the shared throwaway cluster, created with the fixture DDL of
// the source schemas.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { sourceDdl } from '../embedded/ddl.ts';
import type { SourceName } from '../model/events.ts';

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

export function clusterUrl(database = 'postgres'): string {
  return `postgres://postgres@127.0.0.1:${inject('pgPort')}/${database}`;
}

const sharedClusterUrl = (database?: string) => clusterUrl(database);

/**
 * A database of its own on the shared test cluster, or with `cluster` on another one (a
 * cluster with wal_level=logical, for mode: replication).
 */
export async function createTestDatabase(options: { schemas?: SourceName[]; encoding?: 'UTF8' | 'SQL_ASCII'; cluster?: { url(database?: string): string } } = {}): Promise<TestDatabase> {
  const clusterUrl = (database?: string) => (options.cluster ? options.cluster.url(database) : sharedClusterUrl(database));
  const name = `tw_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: clusterUrl() });
  await admin.connect();
  const encoding = options.encoding ?? 'UTF8';
  await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING '${encoding}' LC_COLLATE 'C' LC_CTYPE 'C'`);
  await admin.end();
  const url = clusterUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  pool.on('error', () => undefined);
  for (const schema of options.schemas ?? []) await pool.query(sourceDdl(schema));
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: clusterUrl() });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** Drops a role created by a test (roles belong to the cluster, not to a test's database). */
export async function dropTestRole(role: string): Promise<void> {
  const admin = new pg.Client({ connectionString: clusterUrl() });
  await admin.connect();
  try {
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
  } finally {
    await admin.end();
  }
}
