// copyToFile against a real PostgreSQL: the file holds exactly COPY's text, and the connection
// is left as pg expects it after a complete copy, a failed one and one with notices.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { copyToFile } from './copy-to-file.ts';
import { createPool } from './postgres.ts';

describe('copyToFile', () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'tw-copy-'));
  });
  afterAll(async () => {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the rows as COPY text, across many blocks, and returns their count', async () => {
    const client = await db.pool.connect();
    try {
      // ~40 MiB: several 4 MiB blocks, rows split across socket reads; escapes and NULLs.
      const sql = `COPY (SELECT i, repeat('x', i % 300), CASE WHEN i % 7 = 0 THEN NULL ELSE E'tab\\there' END FROM generate_series(1, 200000) AS i) TO STDOUT`;
      const file = join(dir, 'rows.tsv');
      expect(await copyToFile(client, sql, file)).toBe(200_000);
      const lines = readFileSync(file, 'utf8').split('\n');
      expect(lines.pop()).toBe('');
      expect(lines).toHaveLength(200_000);
      expect(lines[0]).toBe(`1\t${'x'}\ttab\\there`);
      expect(lines[6]).toBe(`7\t${'x'.repeat(7)}\t\\N`);
      expect(lines[199_999]).toBe(`200000\t${'x'.repeat(200_000 % 300)}\ttab\\there`);
      // The connection is pg's again.
      expect((await client.query('SELECT 41 + 1 AS n')).rows[0].n).toBe(42);
    } finally {
      client.release();
    }
  });

  it('fails with PostgreSQL\'s error when the copy fails half-way, and the connection stays usable', async () => {
    const client = await db.pool.connect();
    try {
      const sql = 'COPY (SELECT 1 / (100000 - i) FROM generate_series(1, 200000) AS i) TO STDOUT';
      await expect(copyToFile(client, sql, join(dir, 'failed.tsv'))).rejects.toThrow(/division by zero/);
      expect((await client.query('SELECT 1 AS n')).rows[0].n).toBe(1);
    } finally {
      client.release();
    }
  });

  it('skips notices sent between rows', async () => {
    const client = await db.pool.connect();
    try {
      await client.query(`CREATE OR REPLACE FUNCTION pg_temp.noisy(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'row %', i; RETURN i; END $$`);
      const file = join(dir, 'notices.tsv');
      expect(await copyToFile(client, 'COPY (SELECT pg_temp.noisy(i) FROM generate_series(1, 1000) AS i) TO STDOUT', file)).toBe(1000);
      expect(readFileSync(file, 'utf8')).toBe(Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join(''));
      expect((await client.query('SELECT 2 AS n')).rows[0].n).toBe(2);
    } finally {
      client.release();
    }
  });

  it('fails, without hanging or crashing the process, when the server goes away in the middle of a copy', async () => {
    // The pool tokenwatch reads through: a checked-out client losing its connection must
    // reject its query, and nothing else (vitest fails the run on an uncaught error).
    const pool = createPool(db.url, { max: 1 });
    const client = await pool.connect();
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      // Rows slow enough (pg_sleep every 10,000th) that the backend is terminated mid-way.
      const sql = 'COPY (SELECT i, CASE WHEN i % 10000 = 0 THEN pg_sleep(0.05)::text END FROM generate_series(1, 1000000) AS i) TO STDOUT';
      const ended = new Promise((resolve) => client.once('end', resolve));
      // The outcome is captured at once: the copy may fail before pg_terminate_backend's own
      // reply arrives, and a rejection with no handler yet is reported by vitest as unhandled.
      const outcome = copyToFile(client, sql, join(dir, 'terminated.tsv')).then(
        (rowCount) => ({ rowCount }),
        (error: unknown) => ({ error }),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      const result = await outcome;
      expect(result).toHaveProperty('error');
      expect(String((result as { error: unknown }).error)).toMatch(/terminat|Connection|closed|ended/i);
      // pg emits the lost connection as an 'error' event as well, when the socket closes
      // (without a listener that throws, and the client never reports its end).
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('the client never reported the end of its connection')), 5000)));
      try {
        await Promise.race([ended, late]);
      } finally {
        // A timeout still pending would reject after the test, unhandled.
        clearTimeout(timer);
      }
    } finally {
      // The connection is gone: destroy the client rather than return it to the pool.
      client.release(true);
      await pool.end();
    }
  });
});

