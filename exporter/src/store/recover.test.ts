// A crash between an insert's part and its materialized views' parts leaves rows the rollups
// never counted. recoverDerived rebuilds the days written since the checkpoint.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Config } from '../config/schema.ts';
import { openStore, type EventStore } from './clickhouse.ts';
import { recoverDerived } from './recover.ts';

describe('recovery of derived rows after a crash', () => {
  let dir: string;
  let store: EventStore;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tw-recover-'));
    store = await openStore(Config.parse({ stateDir: dir }));
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const request = (id: number, day: string, status = 200) => ({
    tenant: 'acme', source: 'claude-nexus-proxy', request_id: `r-${id}`, started_at: `${day} 10:00:00.000`, model: 'claude-sonnet-4-5',
    http_status: status, error_type: status >= 400 ? 'overloaded_error' : '', input_tokens: 10, output_tokens: id, cost_usd: '0.000100000', cost_known: true,
  });
  const totals = async () => {
    const [row] = await store.query<Record<string, string>>(`SELECT
      (SELECT count() FROM tokenwatch.requests) AS physical,
      (SELECT count() FROM tokenwatch.requests FINAL) AS distinct_rows,
      (SELECT sum(output_tokens) FROM tokenwatch.requests FINAL) AS output,
      (SELECT sum(requests) FROM tokenwatch.requests_daily) AS rollup_requests,
      (SELECT sum(output_tokens) FROM tokenwatch.requests_daily) AS rollup_output,
      (SELECT count() FROM tokenwatch.activity_events FINAL WHERE event_type = 'error') AS errors,
      (SELECT count() FROM tokenwatch.messages) AS messages,
      (SELECT sum(messages) FROM tokenwatch.messages_daily) AS rollup_messages`);
    return Object.fromEntries(Object.entries(row!).map(([k, v]) => [k, Number(v)]));
  };

  it('rebuilds rollups and error events of the days written since the checkpoint, and leaves one copy of each row', async () => {
    // Before the checkpoint: complete writes on two days.
    await store.insert('requests', [request(1, '2026-03-01'), request(2, '2026-03-02'), request(3, '2026-03-02', 529)]);
    await store.insert('messages', [{ tenant: 'acme', source: 'claude-nexus-proxy', conversation_id: 'c', message_id: 'm-1', role: 'user', content: 'hi', created_at: '2026-03-02 10:00:00.000' }]);
    // (More than recoverDerived's margin before the checkpoint.)
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const checkpoint = new Date();
    // After it, the crash: rows whose views never ran (the views are detached for the insert).
    await store.command('DETACH TABLE tokenwatch.requests_daily_mv');
    await store.command('DETACH TABLE tokenwatch.error_events_mv');
    await store.command('DETACH TABLE tokenwatch.messages_daily_mv');
    await store.insert('requests', [request(4, '2026-03-02', 500), request(5, '2026-03-03')]);
    await store.insert('messages', [{ tenant: 'acme', source: 'claude-nexus-proxy', conversation_id: 'c', message_id: 'm-2', role: 'assistant', content: 'hello', created_at: '2026-03-02 10:00:01.000' }]);
    await store.command('ATTACH TABLE tokenwatch.requests_daily_mv');
    await store.command('ATTACH TABLE tokenwatch.error_events_mv');
    await store.command('ATTACH TABLE tokenwatch.messages_daily_mv');
    const broken = await totals();
    expect(broken.rollup_requests).toBe(3);
    expect(broken.errors).toBe(1);

    // Only the days written since the checkpoint are rebuilt.
    const result = await recoverDerived(store, 'claude-nexus-proxy', checkpoint);
    expect(result.map((r) => [r.table, r.days])).toEqual([['requests', ['2026-03-02', '2026-03-03']], ['messages', ['2026-03-02']]]);
    const expected = { physical: 5, distinct_rows: 5, output: 15, rollup_requests: 5, rollup_output: 15, errors: 2, messages: 2, rollup_messages: 2 };
    expect(await totals()).toEqual(expected);
    // With a watermark after the broken days, the search does not reach them.
    expect(await recoverDerived(store, 'claude-nexus-proxy', checkpoint, new Date('2026-04-01T00:00:00Z'))).toEqual([]);
    // Repeating it (as after a crash during the repair) changes nothing.
    await recoverDerived(store, 'claude-nexus-proxy', checkpoint);
    expect(await totals()).toEqual(expected);
    // Another source's rows are not touched.
    expect(await recoverDerived(store, 'litellm', checkpoint)).toEqual([]);
  });
});
