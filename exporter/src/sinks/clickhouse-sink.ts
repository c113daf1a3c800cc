// Writes canonical events to the ClickHouse event store, each source row exactly once.
//
// The reader delivers pages at least once: after a crash, the pages after the last checkpoint
// are read again. Raw tables are ReplacingMergeTree (a re-sent row collapses), but the daily
// rollups are materialized views that would count a re-sent row twice. So before inserting
// requests and messages, the sink asks ClickHouse which ids of the page are already stored
// (bounded by the page's time range, on the sort key) and inserts only the others. One writer
// per stream (one tokenwatch per source) keeps that check race-free.
import type { ActivityEvent, AgentSnapshot, CanonicalEvent, ConversationSnapshot, MessageEvent, RequestEvent, UsageSnapshot } from '../model/events.ts';
import type { EventStore } from '../store/clickhouse.ts';
import { storedContent, type ContentMode } from '../store/redact.ts';
import { recoverDerived, type RecoverResult } from '../store/recover.ts';
import type { RejectedRows, Sink } from './sink.ts';

/**
 * ClickHouse errors that mean "these rows", not "this connection": the insert would fail the
 * same way however often it is tried. Anything else (network, server down) fails the write,
 * and the page is read again.
 */
const DATA_ERRORS = new Set([
  'ARGUMENT_OUT_OF_BOUND', 'DECIMAL_OVERFLOW', 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED', 'CANNOT_PARSE_TEXT',
  'CANNOT_PARSE_QUOTED_STRING', 'CANNOT_PARSE_DATE', 'CANNOT_PARSE_DATETIME', 'CANNOT_PARSE_NUMBER', 'CANNOT_PARSE_BOOL', 'CANNOT_PARSE_UUID',
  'TYPE_MISMATCH', 'CANNOT_CONVERT_TYPE', 'INCORRECT_DATA', 'TOO_LARGE_STRING_SIZE', 'CANNOT_READ_ARRAY_FROM_TEXT',
]);

/** The ClickHouse error name when `error` is a refusal of the data itself, else undefined. */
export function refusedDataReason(error: unknown): string | undefined {
  const type = (error as { type?: unknown } | null)?.type;
  return typeof type === 'string' && DATA_ERRORS.has(type) ? type : undefined;
}

/** The key of a (table, reason) count of refused rows. */
function rejectedKey(table: string, reason: string): string {
  return `${table}\u0000${reason}`;
}

/** The source id a refused row carries, whatever table it was meant for. */
function rowIdOf(row: Record<string, unknown>): string {
  for (const key of ['request_id', 'message_id', 'event_id', 'conversation_id']) if (typeof row[key] === 'string') return row[key];
  return '';
}

/** '2026-11-22T04:03:20.920Z' -> '2026-11-22 04:03:20.920', what DateTime64 parses by default. */
export function chTime(iso: string): string {
  return iso.replace('T', ' ').replace(/Z$/, '');
}

const QUOTA_THRESHOLDS = [0.8, 0.9, 1.0] as const;
const MAX_VERSION = 2 ** 52;

function requestRow(e: RequestEvent): Record<string, unknown> {
  return {
    tenant: e.tenant, source: e.source, request_id: e.requestId, started_at: chTime(e.startedAt),
    ended_at: e.endedAt === null ? null : chTime(e.endedAt), conversation_id: e.conversationId ?? '', branch_id: e.branchId ?? '',
    parent_request_id: e.parentRequestId ?? '', parent_task_request_id: e.parentTaskRequestId ?? '', is_subtask: e.isSubtask,
    account: e.account ?? '', user: e.user ?? '', model: e.model, provider: e.provider, operation: e.operation,
    http_status: e.httpStatus ?? 0, error_type: e.errorType ?? '', input_tokens: e.inputTokens, output_tokens: e.outputTokens,
    cache_read_tokens: e.cacheReadTokens, cache_write_tokens: e.cacheWriteTokens,
    // Decimal(18, 9) from a string: no binary floating-point detour.
    cost_usd: (e.costUsd ?? 0).toFixed(9), cost_known: e.costUsd !== null, duration_ms: e.durationMs, ttft_ms: e.timeToFirstTokenMs,
    tool_calls: e.toolCalls, streaming: e.streaming, rate_limit_status: e.rateLimitStatus ?? '',
  };
}

function activity(e: { tenant: string; source: string }, type: string, id: string, at: string, extra: Partial<Record<'agent' | 'conversation_id' | 'resource' | 'details', string>> & { value?: number }) {
  return {
    tenant: e.tenant, source: e.source, event_id: `${type}:${id}`, event_type: type, event_time: chTime(at),
    agent: extra.agent ?? '', conversation_id: extra.conversation_id ?? '', resource: extra.resource ?? '', value: extra.value ?? 0,
    details: extra.details ?? '', version: MAX_VERSION - Date.parse(at),
  };
}

export class ClickHouseSink implements Sink {
  readonly name = 'clickhouse';
  readonly store: EventStore;
  private readonly content: ContentMode;
  private readonly rejected = new Map<string, RejectedRows>();

  constructor(store: EventStore, content: ContentMode) {
    this.store = store;
    this.content = content;
  }

  /**
   * Counts of refused rows from the dead_letters table, where each of them is kept: the counter
   * survives a restart, and counts what an earlier run (a backfill) set aside.
   */
  async restoreRejectedCounts(): Promise<void> {
    const rows = await this.store.query<{ table: string; reason: string; count: string | number }>(
      `SELECT target_table AS table, reason, count() AS count FROM ${this.store.database}.dead_letters GROUP BY target_table, reason`,
    ).catch((error: unknown) => {
      // A store whose migrations are not applied yet (clickhouse.migrateOnStart: false) has none.
      if ((error as { type?: unknown }).type === 'UNKNOWN_TABLE') return [];
      throw error;
    });
    this.rejected.clear();
    for (const r of rows) this.rejected.set(rejectedKey(r.table, r.reason), { table: r.table, reason: r.reason, count: Number(r.count) });
  }

  rejectedRows(): readonly RejectedRows[] {
    return [...this.rejected.values()].map((r) => ({ ...r }));
  }

  /**
   * Inserts `rows`; when ClickHouse refuses the data (not the connection), splits the page in
   * halves until the refused rows are isolated, keeps each in dead_letters and counts it, and
   * inserts the rest. Each insert of a page this size is one block, so a refused insert wrote
   * nothing and the halves add nothing twice.
   */
  private async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.store.insert(table, rows);
    } catch (error) {
      const reason = refusedDataReason(error);
      if (reason === undefined) throw error;
      if (rows.length === 1) {
        await this.deadLetter(table, rows[0]!, reason, error);
        return;
      }
      const half = Math.ceil(rows.length / 2);
      await this.insert(table, rows.slice(0, half));
      await this.insert(table, rows.slice(half));
    }
  }

  private async deadLetter(table: string, row: Record<string, unknown>, reason: string, error: unknown): Promise<void> {
    await this.store.insert('dead_letters', [{
      tenant: typeof row.tenant === 'string' ? row.tenant : '', source: typeof row.source === 'string' ? row.source : '', target_table: table,
      row_id: rowIdOf(row), reason, error: (error instanceof Error ? error.message : String(error)).slice(0, 2000), row: JSON.stringify(row),
    }]);
    const key = rejectedKey(table, reason);
    const entry = this.rejected.get(key) ?? { table, reason, count: 0 };
    entry.count += 1;
    this.rejected.set(key, entry);
  }

  /** Ids of `ids` already stored in `table`, searched within the time range of the page. */
  private async existing(table: string, idColumn: string, timeColumn: string, ids: string[], times: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const sorted = [...times].sort();
    const rows = await this.store.query<{ id: string }>(
      `SELECT ${idColumn} AS id FROM ${this.store.database}.${table}
       WHERE ${timeColumn} >= {from:DateTime64(3, 'UTC')} AND ${timeColumn} <= {to:DateTime64(3, 'UTC')} AND ${idColumn} IN {ids:Array(String)}`,
      { from: chTime(sorted[0]!), to: chTime(sorted[sorted.length - 1]!), ids },
    );
    return new Set(rows.map((r) => r.id));
  }

  async write(events: readonly CanonicalEvent[]): Promise<void> {
    const requests: RequestEvent[] = [];
    const messages: MessageEvent[] = [];
    const conversations: ConversationSnapshot[] = [];
    const usage: UsageSnapshot[] = [];
    const agents: AgentSnapshot[] = [];
    const platform: ActivityEvent[] = [];
    for (const e of events) {
      if (e.kind === 'request') requests.push(e);
      else if (e.kind === 'message') messages.push(e);
      else if (e.kind === 'conversation') conversations.push(e);
      else if (e.kind === 'usage') usage.push(e);
      else if (e.kind === 'agent') agents.push(e);
      else if (e.kind === 'activity') platform.push(e);
    }
    const activities: Record<string, unknown>[] = [];

    if (requests.length > 0) {
      const stored = await this.existing('requests', 'request_id', 'started_at', requests.map((r) => r.requestId), requests.map((r) => r.startedAt));
      const fresh = requests.filter((r) => !stored.has(r.requestId));
      // Error activity events follow from these rows (materialized view error_events_mv).
      await this.insert('requests', fresh.map(requestRow));
    }
    if (messages.length > 0) {
      const stored = await this.existing('messages', 'message_id', 'created_at', messages.map((m) => m.messageId), messages.map((m) => m.createdAt));
      await this.insert('messages', messages.filter((m) => !stored.has(m.messageId)).map((m) => ({
        tenant: m.tenant, source: m.source, conversation_id: m.conversationId, message_id: m.messageId, role: m.role,
        content: storedContent(m.content, this.content), sequence: m.sequence, channel: m.channel ?? '', agent: m.agent ?? '',
        user: m.user ?? '', request_id: m.requestId ?? '', created_at: chTime(m.createdAt),
      })));
    }
    if (conversations.length > 0) {
      await this.insert('conversations', conversations.map((c) => ({
        tenant: c.tenant, source: c.source, conversation_id: c.conversationId, agent: c.agent ?? '', user: c.user ?? '',
        channel: c.channel, status: c.status, started_at: chTime(c.startedAt), last_activity_at: chTime(c.lastActivityAt),
        duration_seconds: c.durationSeconds, observed_at: chTime(c.observedAt),
      })));
      for (const c of conversations) {
        activities.push(activity(c, 'conversation_started', c.conversationId, c.startedAt, { agent: c.agent ?? '', conversation_id: c.conversationId, details: JSON.stringify({ channel: c.channel }) }));
      }
    }
    if (usage.length > 0) {
      await this.insert('usage_daily', usage.map((u) => ({
        tenant: u.tenant, source: u.source, client: u.client, agent: u.agent, resource: u.resource, period_start: u.periodStart,
        day: u.observedAt.slice(0, 10), used: u.used, quota: u.limit, observed_at: chTime(u.observedAt),
      })));
      activities.push(...quotaCrossings(usage));
    }
    for (const a of agents) {
      // One event per configuration change: the id carries the change time.
      if (a.configChangedAt !== null) {
        activities.push(activity(a, 'agent_configuration_changed', `${a.agentId}:${a.configChangedAt}`, a.configChangedAt, { agent: a.agent, details: JSON.stringify({ enabled: a.enabled, model: a.model }) }));
      }
    }
    for (const a of platform) {
      activities.push(activity(a, a.activityType, a.activityId, a.occurredAt, {
        agent: a.agent ?? '', resource: a.resourceType ?? '', value: a.durationSeconds ?? 0,
        details: JSON.stringify({ action: a.action, status: a.status, resource_name: a.resourceName, ...a.details }),
      }));
    }
    await this.insert('activity_events', activities);
  }

  /** After a crash: rebuilds the rollups and events derived from rows written since the checkpoint (store/recover.ts). */
  recover(source: string, since: Date, notBefore: Date | null): Promise<RecoverResult[]> {
    return recoverDerived(this.store, source, since, notBefore);
  }

  async close(): Promise<void> {}
}

/** Quota threshold crossings (80, 90, 100 %) per client, resource and period, from one snapshot. */
function quotaCrossings(usage: readonly UsageSnapshot[]): Record<string, unknown>[] {
  const totals = new Map<string, { first: UsageSnapshot; used: number; limit: number }>();
  for (const u of usage) {
    const key = `${u.source}\u0001${u.client}\u0001${u.resource}\u0001${u.periodStart}`;
    const total = totals.get(key) ?? { first: u, used: 0, limit: 0 };
    total.used += u.used;
    total.limit = Math.max(total.limit, u.limit);
    totals.set(key, total);
  }
  const out: Record<string, unknown>[] = [];
  for (const { first, used, limit } of totals.values()) {
    if (limit <= 0) continue;
    for (const threshold of QUOTA_THRESHOLDS) {
      if (used / limit < threshold) continue;
      out.push(activity(first, 'quota_threshold_crossed', `${first.client}:${first.resource}:${first.periodStart}:${threshold * 100}`, first.observedAt, {
        resource: first.resource, value: used / limit, details: JSON.stringify({ client: first.client, threshold, used, limit }),
      }));
    }
  }
  return out;
}
