// The demo database's first population, interrupted: nothing half-made is left behind for
// the next start to take as the whole demo day.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startEmbeddedDatabase } from './pglite-server.ts';

describe('startEmbeddedDatabase', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('removes a database whose population was aborted, releases its lock, and creates it whole on the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-pglite-abort-'));
    dirs.push(dir);
    const controller = new AbortController();
    controller.abort(new Error('stopped by SIGTERM while starting'));
    await expect(startEmbeddedDatabase(dir, { signal: controller.signal })).rejects.toThrow('stopped by SIGTERM while starting');
    expect(existsSync(join(dir, 'embedded-postgres', 'PG_VERSION'))).toBe(false);

    const db = await startEmbeddedDatabase(dir);
    try {
      expect(db.created).toBe(true);
      expect(existsSync(join(dir, 'embedded-postgres', 'PG_VERSION'))).toBe(true);
    } finally {
      await db.close();
    }
  }, 120_000);
});
