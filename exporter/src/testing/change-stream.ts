// Waiting for a source's change stream in tests of mode: replication.
import type pg from 'pg';
import { changeStreamApplicationName } from '../reader/replication/slot.ts';

/**
 * Resolves once the change stream of `source` runs: its own walsender is connected. The slot
 * alone is active earlier, while it is created, before the initial load and its checkpoint; and
 * transactions begun during that time arrive through the initial load, not the stream.
 */
export async function untilChangeStream(pool: pg.Pool, source: string, timeoutMs = 30_000): Promise<void> {
  for (let waited = 0; ; waited += 100) {
    const { rowCount } = await pool.query('SELECT 1 FROM pg_stat_replication WHERE application_name = $1', [changeStreamApplicationName(source)]);
    if (rowCount === 1) return;
    if (waited >= timeoutMs) throw new Error(`the change stream of ${source} did not start within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
