// Every example query of the README runs against seeded data and returns rows.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { seedAll } from '../embedded/seed.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { openStore, type EventStore } from './clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';

function readmeExampleQueries(): { title: string; sql: string }[] {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('<!-- example-queries:start -->'), readme.indexOf('<!-- example-queries:end -->'));
  return [...section.matchAll(/```sql\n-- ([^\n]+)\n([\s\S]*?)```/g)].map((m) => ({ title: m[1]!, sql: m[2]!.trim() }));
}

describe('README example queries', () => {
  let db: TestDatabase;
  let store: EventStore;
  let stateDir: string;

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
    await seedAll(db.pool, { requests: 2000, spendLogs: 500 });
    // Push one client over 80 % of its voice quota so the quota-crossing query has rows.
    await db.pool.query("UPDATE agent_usage SET voice_seconds_used = 5000 WHERE client_id = (SELECT id FROM clients WHERE slug = 'client-0') AND agent_id = (SELECT min(agent_id::text)::uuid FROM agent_usage u JOIN clients c ON c.id = u.client_id WHERE c.slug = 'client-0')");
    stateDir = mkdtempSync(join(tmpdir(), 'tw-examples-'));
    const config = testConfig(db.url, { stateDir });
    store = await openStore(config);
    await store.migrate();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false });
    await pipeline.backfill();
    await pipeline.close();
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('has at least ten', () => {
    expect(readmeExampleQueries().length).toBeGreaterThanOrEqual(10);
  });

  for (const { title, sql } of readmeExampleQueries()) {
    it(`runs: ${title}`, async () => {
      const rows = await store.query<Record<string, unknown>>(sql);
      expect(rows.length, title).toBeGreaterThan(0);
    });
  }
});
