// Benchmark: the Conversations and Agents dashboards' ClickHouse queries, Grafana's macros
// expanded for the last 7 days (every variable at All), over 10M request events and 5M
// messages in the embedded engine (BENCH_ANALYTICS_REQUESTS, BENCH_ANALYTICS_MESSAGES;
// generated in bulk by ClickHouse itself, over 30 days, a Zipf-like spread of 200 tenants,
// 1M conversations). Median and p95 of 7 runs after a warm-up; target median < 300 ms.
// EXPLAIN ESTIMATE tells which queries would read (nearly) a whole table. A query that reads
// with FINAL within partitions (dashboards/lib/final.ts) is also timed with the setting off.
// The baseline: a full scan of the table the query reads most of (count() with a
// trivially true filter on a non-key column), measured in the same run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../exporter/src/config/schema.ts';
import { openStore, type EventStore } from '../exporter/src/store/clickhouse.ts';
import { MonitoringConfig } from '../dashboards/config.ts';
import { dashboards } from '../dashboards/index.ts';
import { expandMacros } from '../dashboards/lib/macros.ts';
import { FINAL_WITHIN_PARTITIONS, finalAcrossPartitions } from '../dashboards/lib/final.ts';
import { clickHouseTargets } from '../dashboards/lib/grafana.ts';
import { percentile, type BenchReport } from './report.ts';

const RUNS = 7;
const CHUNK = 1_000_000;

export async function generate(store: EventStore, requests: number, messages: number): Promise<void> {
  const stages: string[] = [];
  let stageStart = performance.now();
  const stage = (name: string) => {
    stages.push(`${name} ${((performance.now() - stageStart) / 1000).toFixed(1)} s`);
    stageStart = performance.now();
  };
  const spread = 'now64(3) - toIntervalMillisecond(rand64() % (30 * 86400000))';
  const tenant = "concat('tenant-', toString(toUInt32(pow(rand() / 4294967295, 3) * 200)), '.example.com')";
  for (let offset = 0; offset < requests; offset += CHUNK) {
    await store.command(`INSERT INTO tokenwatch.requests (tenant, source, request_id, started_at, ended_at, conversation_id, branch_id, parent_request_id,
        parent_task_request_id, is_subtask, account, user, model, provider, operation, http_status, error_type, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, cost_usd, cost_known, duration_ms, ttft_ms, tool_calls, streaming, rate_limit_status)
      SELECT ${tenant}, 'claude-nexus-proxy', toString(generateUUIDv4(number)), ${spread} AS started, started + toIntervalMillisecond(500 + rand() % 20000),
        concat('conv-', toString((number + ${offset}) % 1000000)), if(number % 17 = 0, 'subtask_1', 'main'), '', '', number % 17 = 0, concat('acc_', toString(number % 3)), concat('key-', toString(number % 500)),
        ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001', 'claude-opus-4-1-20250805', 'claude-3-5-haiku-20241022'][1 + number % 4], 'anthropic', 'chat',
        multiIf(number % 97 = 0, 529, number % 211 = 0, 429, 200), multiIf(number % 97 = 0, 'overloaded_error', number % 211 = 0, 'rate_limit_error', ''),
        rand() % 8000, rand() % 2000, rand() % 4000, 0, toDecimal64((rand() % 100000) / 1000000, 9), true, 300 + rand() % 30000, 200 + rand() % 3000, rand() % 3, true, 'allowed'
      FROM numbers(${Math.min(CHUNK, requests - offset)})`);
  }
  stage('requests');
  for (let offset = 0; offset < messages; offset += CHUNK) {
    await store.command(`INSERT INTO tokenwatch.messages (tenant, source, conversation_id, message_id, role, content, sequence, channel, agent, user, request_id, created_at)
      SELECT ${tenant}, if(number % 5 = 0, 'sidekick-forge', 'claude-nexus-proxy'), concat('conv-', toString((number + ${offset}) % 1000000)), toString(generateUUIDv4(number)),
        if(number % 2 = 0, 'user', 'assistant'), concat('message ', toString(number), ' about ', ['billing', 'deploys', 'the schedule', 'an invoice', 'a refund'][1 + number % 5], ' ', repeat('lorem ipsum ', 1 + number % 8)),
        toInt32(number % 40), if(number % 5 = 0, ['voice', 'text'][1 + number % 2], 'api'), if(number % 5 = 0, concat('agent-', toString(number % 40)), ''),
        concat('user-', toString(number % 5000)), '', ${spread}
      FROM numbers(${Math.min(CHUNK, messages - offset)})`);
  }
  stage('messages');
  const conversations = Math.round(messages / 10);
  await store.command(`INSERT INTO tokenwatch.conversations (tenant, source, conversation_id, agent, user, channel, status, started_at, last_activity_at, duration_seconds, observed_at)
    SELECT concat('client-', toString(number % 6)), 'sidekick-forge', concat('conv-', toString(number)), concat('agent-', toString(number % 40)), concat('user-', toString(number % 5000)),
      ['voice', 'text', 'hybrid', 'telegram'][1 + number % 4], if(number % 10 = 0, 'active', 'archived'), ${spread} AS started, started + toIntervalSecond(30 + rand() % 1800), 30 + rand() % 1800, now64(3)
    FROM numbers(${conversations})`);
  await store.command(`INSERT INTO tokenwatch.activity_events (tenant, source, event_id, event_type, event_time, agent, conversation_id, resource, value, details, version)
    SELECT concat('client-', toString(number % 6)), 'sidekick-forge', concat('e-', toString(number)), ['conversation_started', 'conversation_ended', 'agent_configuration_changed', 'quota_threshold_crossed'][1 + number % 4],
      ${spread}, concat('agent-', toString(number % 40)), concat('conv-', toString(number)), 'voice_seconds', rand() % 1000, '{}', number
    FROM numbers(${conversations * 2})`);
  const today = new Date().toISOString().slice(0, 10);
  await store.command(`INSERT INTO tokenwatch.usage_daily (tenant, source, client, agent, resource, period_start, day, used, quota, observed_at)
    SELECT concat('client-', toString(number % 6)), 'sidekick-forge', concat('client-', toString(number % 6)), concat('agent-', toString(number % 40)),
      ['voice_seconds', 'text_messages', 'embedding_chunks'][1 + intDiv(number, 40) % 3], toStartOfMonth(toDate('${today}') - intDiv(number, 120)),
      toDate('${today}') - intDiv(number, 120), rand() % 5000, 6000, now64(3)
    FROM numbers(120 * 60)`);
  stage('conversations, activity, usage');
  await store.command('OPTIMIZE TABLE tokenwatch.requests FINAL');
  stage('OPTIMIZE requests');
  await store.command('OPTIMIZE TABLE tokenwatch.messages FINAL');
  stage('OPTIMIZE messages');
  console.log(`  generated: ${stages.join(', ')}`);
}

async function timed(store: EventStore, sql: string): Promise<number> {
  const started = performance.now();
  await store.query(sql);
  return performance.now() - started;
}

export async function runAnalyticsBench(report: BenchReport): Promise<void> {
  const requests = Number(process.env.BENCH_ANALYTICS_REQUESTS ?? 10_000_000);
  const messages = Number(process.env.BENCH_ANALYTICS_MESSAGES ?? 5_000_000);
  const stateDir = mkdtempSync(join(tmpdir(), 'tw-bench-analytics-'));
  const store = await openStore(Config.parse({ stateDir }));
  try {
    await store.migrate();
    const generating = performance.now();
    await generate(store, requests, messages);
    console.log(`\nanalytics: ${requests} requests and ${messages} messages generated in ${((performance.now() - generating) / 1000).toFixed(1)} s; the Conversations and Agents dashboards' queries over the last 7 days`);
    const totals = Object.fromEntries((await store.query<{ table: string; rows: number }>("SELECT table, sum(rows) AS rows FROM system.parts WHERE active AND database = 'tokenwatch' GROUP BY table")).map((r) => [r.table, Number(r.rows)]));
    const [conversation] = await store.query<{ id: string }>("SELECT conversation_id AS id FROM tokenwatch.messages WHERE created_at > now() - INTERVAL 7 DAY LIMIT 1");
    const range = { from: new Date(Date.now() - 7 * 86_400_000), to: new Date() };
    const values = { user: '', search: '', conversation: conversation!.id, content_limit: '2000' };
    const fullScan = await timed(store, 'SELECT count() FROM tokenwatch.messages FINAL');
    /** Milliseconds of RUNS runs of `sql`, after one run that is not counted. */
    const runs = async (sql: string) => {
      await timed(store, sql);
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) times.push(await timed(store, sql));
      return times;
    };
    const targets = dashboards(MonitoringConfig.parse({})).flatMap((entry) => clickHouseTargets(entry.build()))
      .filter((t) => ['tokenwatch-conversations', 'tokenwatch-conversation-thread', 'tokenwatch-agents-quotas'].includes(t.uid));
    for (const { uid, title, rawSql } of targets) {
      const sql = expandMacros(rawSql, { ...range, values });
      const times = await runs(sql);
      const estimate = await store.query<{ table: string; rows: number }>(`EXPLAIN ESTIMATE ${sql}`);
      const whole = estimate.filter((e) => totals[e.table] !== undefined && Number(e.rows) >= 0.9 * totals[e.table]!).map((e) => e.table);
      const median = percentile(times, 50);
      if (sql.includes(FINAL_WITHIN_PARTITIONS)) {
        // The same query with FINAL merging across partitions, as before final.ts: what the setting saves.
        const before = percentile(await runs(finalAcrossPartitions(sql)), 50);
        report.add({
          bench: 'analytics', name: `${uid} / ${title}: median with FINAL within partitions, against FINAL across partitions`,
          value: median, unit: 'ms', baseline: { name: 'FINAL across partitions (the setting off)', value: before }, ratio: median / before,
        });
      }
      report.add({
        bench: 'analytics', name: `${uid} / ${title}: median (p95 ${percentile(times, 95).toFixed(0)} ms)${whole.length > 0 ? `; reads the whole ${[...new Set(whole)].join(', ')} table` : ''}`,
        value: median, unit: 'ms', baseline: { name: 'SELECT count() FROM messages FINAL (the whole table)', value: fullScan }, ratio: median / fullScan, target: '< 300 ms', met: median < 300,
      });
    }
  } finally {
    await store.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
