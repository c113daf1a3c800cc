// FINAL within partitions (final.ts): appended only where exact, each table's claim checked
// against the migrated schema, and every dashboard query that gets the setting returns the same
// rows with and without it on data delivered twice, in several parts and across months.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Config } from '../../exporter/src/config/schema.ts';
import { openStore, type EventStore } from '../../exporter/src/store/clickhouse.ts';
import { MonitoringConfig } from '../config.ts';
import { dashboards } from '../index.ts';
import { expandMacros } from './macros.ts';
import { FINAL_WITHIN_PARTITIONS, PARTITION_FIXED_BY_KEY, finalAcrossPartitions, finalTables, finalWithinPartitions } from './final.ts';
import { clickHouseTargets } from './grafana.ts';

describe('FINAL within partitions: which queries get the setting', () => {
  it('appends it when every table read with FINAL keeps its rows in one partition', () => {
    const sql = 'SELECT count() FROM tokenwatch.messages AS m FINAL LEFT JOIN (SELECT 1 FROM tokenwatch.requests FINAL) AS r USING (x)';
    expect(finalTables(sql)).toEqual(['messages', 'requests']);
    expect(finalWithinPartitions(sql)).toBe(`${sql}\nSETTINGS ${FINAL_WITHIN_PARTITIONS}`);
  });
  it('leaves a query alone that reads activity_events with FINAL, or reads nothing with FINAL', () => {
    const mixed = 'SELECT 1 FROM tokenwatch.requests FINAL UNION ALL SELECT 1 FROM tokenwatch.activity_events FINAL';
    expect(finalWithinPartitions(mixed)).toBe(mixed);
    expect(finalWithinPartitions('SELECT 1 FROM tokenwatch.requests_daily')).toBe('SELECT 1 FROM tokenwatch.requests_daily');
  });
  it('refuses a query with its own SETTINGS clause rather than write a second one', () => {
    expect(() => finalWithinPartitions('SELECT 1 FROM tokenwatch.requests FINAL SETTINGS max_threads = 1')).toThrow(/own SETTINGS/);
  });
});

describe('FINAL within partitions on the embedded engine', () => {
  let store: EventStore;
  let stateDir: string;
  const DAY = 86_400_000;
  const now = Date.now();

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'tw-final-'));
    store = await openStore(Config.parse({ stateDir }));
    await store.migrate();
    // A conversation's tenant, agent and user are one (so any() is deterministic), over 60 days
    // (three months at most, two at least); then a tenth of every table delivered again
    // in later inserts: new parts with a newer ingested_at, the duplicates FINAL must drop.
    const at = (n: string) => `toDateTime64(${now / 1000} - (${n} % 60) * 86400 - (${n} % 997), 3)`;
    const insertAll = async (where: string) => {
      await store.command(`INSERT INTO tokenwatch.requests (tenant, source, request_id, started_at, conversation_id, model, input_tokens, output_tokens, cost_usd, user, is_subtask)
        SELECT concat('t', toString(number % 400 % 3)), 'claude-nexus-proxy', concat('r', toString(number)), ${at('number')}, concat('c', toString(number % 400)),
          ['claude-sonnet-4-5', 'claude-haiku-4-5'][1 + number % 2], number % 100, number % 50, toDecimal64(number % 7 / 1000, 9), concat('u', toString(number % 5)), number % 9 = 0
        FROM numbers(4000) WHERE ${where}`);
      await store.command(`INSERT INTO tokenwatch.messages (tenant, source, conversation_id, message_id, role, content, agent, user, channel, created_at)
        SELECT concat('t', toString(number % 400 % 3)), if(number % 2 = 0, 'sidekick-forge', 'claude-nexus-proxy'), concat('c', toString(number % 400)), concat('m', toString(number)),
          if(number % 2 = 0, 'user', 'assistant'), concat('Question ', toString(number)), concat('agent-', toString(number % 4)), concat('u', toString(number % 5)), 'text', ${at('number')}
        FROM numbers(3000) WHERE ${where}`);
      await store.command(`INSERT INTO tokenwatch.conversations (tenant, source, conversation_id, agent, user, channel, status, started_at, last_activity_at, duration_seconds, observed_at)
        SELECT 't0', 'sidekick-forge', concat('c', toString(number)), concat('agent-', toString(number % 4)), 'u1', 'voice', 'archived', ${at('number')}, ${at('number')}, number % 600, now64(3)
        FROM numbers(400) WHERE ${where}`);
      await store.command(`INSERT INTO tokenwatch.usage_daily (tenant, source, client, agent, resource, period_start, day, used, quota, observed_at)
        SELECT 't0', 'sidekick-forge', concat('client-', toString(number % 3)), concat('agent-', toString(number % 4)), 'voice_seconds',
          toStartOfMonth(toDate(${at('number')})), toDate(${at('number')}), number * 10, 6000, now64(3)
        FROM numbers(60) WHERE ${where}`);
    };
    await insertAll('1');
    await insertAll('number % 10 = 0');
    await insertAll('number % 10 = 3');
    // One month merged to a single part (the partitions FINAL can skip), the others left in parts.
    const [oldest] = await store.query<{ p: string }>("SELECT min(partition) AS p FROM system.parts WHERE active AND database = 'tokenwatch' AND table = 'messages'");
    await store.command(`OPTIMIZE TABLE tokenwatch.messages PARTITION ${oldest!.p} FINAL`);
  });
  afterAll(async () => {
    await store?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('each listed table keeps a row in one partition: the partition is not set, or fixed by the sorting key, or by a column the sources never change', async () => {
    const rows = await store.query<{ name: string; partition_key: string; sorting_key: string }>(
      `SELECT name, partition_key, sorting_key FROM system.tables WHERE database = 'tokenwatch' AND name IN (${Object.keys(PARTITION_FIXED_BY_KEY).map((t) => `'${t}'`).join(', ')})`,
    );
    const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
    expect(Object.keys(byName).sort()).toEqual(Object.keys(PARTITION_FIXED_BY_KEY).sort());
    expect(byName.conversations!.partition_key).toBe('');
    expect(byName.requests!.partition_key).toBe('toYYYYMM(started_at)');
    expect(byName.requests!.sorting_key).toContain('toDate(started_at)');
    expect(byName.usage_daily!.partition_key).toBe('toYYYYMM(day)');
    expect(byName.usage_daily!.sorting_key.split(', ')).toContain('day');
    // messages: created_at is not in the key; final.ts says why it cannot change for a message id.
    expect(byName.messages!.partition_key).toBe('toYYYYMM(created_at)');
    // activity_events is left out on purpose: its partition column is not fixed by its key.
    const [activity] = await store.query<{ partition_key: string; sorting_key: string }>("SELECT partition_key, sorting_key FROM system.tables WHERE database = 'tokenwatch' AND name = 'activity_events'");
    expect(activity!.partition_key).toBe('toYYYYMM(event_time)');
    expect(activity!.sorting_key).not.toContain('event_time');
    expect(PARTITION_FIXED_BY_KEY).not.toHaveProperty('activity_events');
  });

  it('every dashboard query with the setting returns the same rows as with a FINAL across partitions', async () => {
    const [dupes] = await store.query<{ raw: string; final: string; months: string }>(
      'SELECT (SELECT count() FROM tokenwatch.messages) AS raw, (SELECT count() FROM tokenwatch.messages FINAL) AS final, (SELECT uniqExact(toYYYYMM(created_at)) FROM tokenwatch.messages) AS months',
    );
    // The data has duplicates for FINAL to remove (600 delivered twice, fewer left after the
    // one month's merge), over more than one month.
    expect(Number(dupes!.raw)).toBeGreaterThan(3000);
    expect(Number(dupes!.final)).toBe(3000);
    expect(Number(dupes!.months)).toBeGreaterThanOrEqual(2);
    const range = { from: new Date(now - 61 * DAY), to: new Date(now + 60_000) };
    let compared = 0;
    for (const { uid, title, rawSql } of dashboards(MonitoringConfig.parse({})).flatMap((entry) => clickHouseTargets(entry.build()))) {
      if (!rawSql.includes(FINAL_WITHIN_PARTITIONS)) continue;
      const sql = expandMacros(rawSql, { ...range, values: { user: '', search: '', conversation: 'c7', content_limit: '2000' } });
      const sorted = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).sort();
      const within = sorted(await store.query(sql));
      expect(within, `${uid} / ${title}`).toEqual(sorted(await store.query(finalAcrossPartitions(sql))));
      compared += 1;
    }
    expect(compared).toBeGreaterThanOrEqual(8);
  });

  it('would be wrong for activity_events, whose event can move to another month: the comparison above can tell', async () => {
    // The same quota crossing observed twice, the second time in the next month.
    await store.command(`INSERT INTO tokenwatch.activity_events (tenant, source, event_id, event_type, event_time, version)
      VALUES ('t0', 'sidekick-forge', 'quota:c1', 'quota_threshold_crossed', '2026-10-31 23:59:00.000', 2)`);
    await store.command(`INSERT INTO tokenwatch.activity_events (tenant, source, event_id, event_type, event_time, version)
      VALUES ('t0', 'sidekick-forge', 'quota:c1', 'quota_threshold_crossed', '2026-11-01 00:01:00.000', 1)`);
    const count = async (setting: number) => Number((await store.query<{ n: string }>(`SELECT count() AS n FROM tokenwatch.activity_events FINAL WHERE event_id = 'quota:c1' SETTINGS do_not_merge_across_partitions_select_final = ${setting}`))[0]!.n);
    expect(await count(0)).toBe(1);
    expect(await count(1)).toBe(2);
  });
});
