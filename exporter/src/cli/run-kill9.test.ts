// kill -9 of `tokenwatch run` at 20 random moments while a writer inserts rows and updates
// them as the proxy does: afterwards
// ClickHouse holds every source row exactly once, the rollups agree, and the totals in
// Prometheus (which scraped every run) equal SQL with no counter reset.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { killRunWhileWriting } from '../testing/kill-run.ts';

const KILLS = 20;

describe('kill -9 of run while rows arrive', () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    // A history to read first, so some kills land in the middle of the first long read.
    await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
      SELECT gen_random_uuid(), 'tenant-' || (i % 5) || '.example.com', now() - make_interval(secs => i * 2), 'claude-opus-4-1-20250805', 'inference',
        CASE WHEN i % 23 = 0 THEN 500 ELSE 200 END, i % 800, i % 333
      FROM generate_series(1, 30000) AS i`);
    dir = mkdtempSync(join(tmpdir(), 'tw-run-kill9-'));
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`loses and duplicates nothing across ${KILLS} kills`, async () => {
    await killRunWhileWriting({ db, dir, config: 'sources:\n  - type: claude-nexus-proxy\n    pollInterval: 300ms\n    batchSize: 1000\n', kills: KILLS, seed: 912, label: '' });
  });
});
