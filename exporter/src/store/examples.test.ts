// Every example query of docs/event-store.md runs against seeded data and returns rows.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededEventStore, type SeededEventStore } from '../testing/event-store.ts';

function readmeExampleQueries(): { title: string; sql: string }[] {
  const readme = readFileSync(new URL('../../../docs/event-store.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('<!-- example-queries:start -->'), readme.indexOf('<!-- example-queries:end -->'));
  return [...section.matchAll(/```sql\n-- ([^\n]+)\n([\s\S]*?)```/g)].map((m) => ({ title: m[1]!, sql: m[2]!.trim() }));
}

describe('docs/event-store.md example queries', () => {
  let seeded: SeededEventStore;

  beforeAll(async () => {
    seeded = await seededEventStore({
      requests: 2000,
      spendLogs: 500,
      // Push one client over 80 % of its voice quota so the quota-crossing query has rows.
      prepare: (db) => db.pool.query("UPDATE agent_usage SET voice_seconds_used = 5000 WHERE client_id = (SELECT id FROM clients WHERE name = 'Client 0') AND agent_id = (SELECT min(agent_id::text)::uuid FROM agent_usage u JOIN clients c ON c.id = u.client_id WHERE c.name = 'Client 0')").then(() => undefined),
    });
  });
  afterAll(async () => {
    await seeded?.close();
  });

  it('has at least ten', () => {
    expect(readmeExampleQueries().length).toBeGreaterThanOrEqual(10);
  });

  for (const { title, sql } of readmeExampleQueries()) {
    it(`runs: ${title}`, async () => {
      const rows = await seeded.store.query<Record<string, unknown>>(sql);
      expect(rows.length, title).toBeGreaterThan(0);
    });
  }
});
