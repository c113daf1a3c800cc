// Writes canonical events to the ClickHouse event store: each version of a source row once.
//
// The reader delivers pages at least once (after a crash, the pages after the last checkpoint
// are read again), and a row updated in place is delivered again with its new content. Raw
// tables are ReplacingMergeTree (the newest version wins), but the daily rollups are
// materialized views that count every insert. So before inserting requests and messages, the
// sink looks up what ClickHouse holds of the page's ids (storedVersions(), bounded by the
// page's time range, on the sort key): an id not stored is inserted; one stored with the same
// fingerprint is left alone; one stored with another content is inserted as a new version,
// and the older version's amounts are taken out of the rollup (a row with negated sums,
// clickhouse/migrations/0008). One writer per stream (one tokenwatch per source) keeps that
// race-free.
import type { ActivityEvent, AgentSnapshot, CanonicalEvent, ConversationSnapshot, MessageEvent, RequestEvent, UsageSnapshot } from '../model/events.ts';
import type { EventStore } from '../store/clickhouse.ts';
import { ACTIVITY_MAX_VERSION } from '../store/bulk-load.ts';
import { storedContent, type ContentMode } from '../store/redact.ts';
import { recoverDerived, type RecoverResult } from '../store/recover.ts';
import type { RejectedRows, Sink } from './sink.ts';
import { fingerprint, isVersioned, versionKey, type StoredVersion, type VersionedEvent } from '../model/row-versions.ts';

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

function requestRow(e: RequestEvent): Record<string, unknown> {
  return {
    fingerprint: fingerprint(e),
    tenant: e.tenant, source: e.source, request_id: e.requestId, started_at: chTime(e.startedAt),
    ended_at: e.endedAt === null ? null : chTime(e.endedAt), conversation_id: e.conversationId ?? '', branch_id: e.branchId ?? '',
    parent_request_id: e.parentRequestId ?? '', parent_task_request_id: e.parentTaskRequestId ?? '', is_subtask: e.isSubtask,
    account: e.account ?? '', user: e.user ?? '', model: e.model, provider: e.provider, operation: e.operation,
    http_status: e.httpStatus ?? 0, error_type: e.errorType ?? '', input_tokens: e.inputTokens, output_tokens: e.outputTokens,
    cache_read_tokens: e.cacheReadTokens, cache_write_tokens: e.cacheWriteTokens,
    // Decimal(18, 9) from a string: no binary floating-point detour.
    cost_usd: (e.costUsd ?? 0).toFixed(9), cost_known: e.costUsd !== null, duration_ms: e.durationMs, ttft_ms: e.timeToFirstTokenMs,
    tool_calls: e.toolCalls, streaming: e.streaming, rate_limit_status: e.rateLimitStatus ?? '',
    cache_write_1h_tokens: e.cacheWrite1hTokens, web_search_requests: e.webSearchRequests, service_tier: e.serviceTier ?? '',
    cost_estimate_usd: e.costEstimateUsd === null ? null : e.costEstimateUsd.toFixed(9), priced_as: e.pricedAs ?? '',
  };
}

function activity(e: { tenant: string; source: string }, type: string, id: string, at: string, extra: Partial<Record<'agent' | 'conversation_id' | 'resource' | 'details', string>> & { value?: number }) {
  return {
    tenant: e.tenant, source: e.source, event_id: `${type}:${id}`, event_type: type, event_time: chTime(at),
    agent: extra.agent ?? '', conversation_id: extra.conversation_id ?? '', resource: extra.resource ?? '', value: extra.value ?? 0,
    details: extra.details ?? '', version: ACTIVITY_MAX_VERSION - Date.parse(at),
  };
}

/** A stored request version as storedVersions() reads it (64-bit integers arrive as text). */
interface StoredRequest {
  id: string;
  fingerprint: string;
  day: string;
  tenant: string;
  source: string;
  model: string;
  error_type: string;
  is_subtask: boolean;
  http_status: number;
  input_tokens: string | number;
  output_tokens: string | number;
  cache_read_tokens: string | number;
  cache_write_tokens: string | number;
  cost_usd: string;
  cost_estimate_usd: string;
  duration_ms: number;
  tool_calls: number;
}

function storedRequest(r: StoredRequest): StoredVersion {
  const amounts = {
    inputTokens: Number(r.input_tokens), outputTokens: Number(r.output_tokens), cacheReadTokens: Number(r.cache_read_tokens),
    cacheWriteTokens: Number(r.cache_write_tokens), costUsd: Number(r.cost_usd), costEstimateUsd: Number(r.cost_estimate_usd),
  };
  const negated = (decimal: string) => (decimal.startsWith('-') ? decimal.slice(1) : `-${decimal}`);
  return {
    fingerprint: r.fingerprint, amounts, httpStatus: r.http_status === 0 ? null : r.http_status,
    retraction: {
      table: 'requests_daily',
      row: {
        day: r.day, tenant: r.tenant, source: r.source, model: r.model, requests: -1, errors: r.error_type === '' ? 0 : -1,
        subtask_requests: r.is_subtask ? -1 : 0, input_tokens: -amounts.inputTokens, output_tokens: -amounts.outputTokens,
        cache_read_tokens: -amounts.cacheReadTokens, cache_write_tokens: -amounts.cacheWriteTokens, cost_usd: negated(r.cost_usd),
        duration_ms_sum: -r.duration_ms, tool_calls: -r.tool_calls,
      },
    },
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

  /**
   * The newest stored version of each request and message of `events` (by versionKey), looked
   * up within the time range of the page on the sort key, with what replacing it takes out of
   * the daily rollups.
   */
  async storedVersions(events: readonly VersionedEvent[]): Promise<Map<string, StoredVersion>> {
    const out = new Map<string, StoredVersion>();
    const requests = events.filter((e): e is RequestEvent => e.kind === 'request');
    const messages = events.filter((e): e is MessageEvent => e.kind === 'message');
    const db = this.store.database;
    const bounds = (times: string[]) => {
      const sorted = [...times].sort();
      return { from: chTime(sorted[0]!), to: chTime(sorted[sorted.length - 1]!) };
    };
    if (requests.length > 0) {
      const rows = await this.store.query<StoredRequest>(
        `SELECT request_id AS id, toString(fingerprint) AS fingerprint, toString(toDate(started_at)) AS day, tenant, source, model,
           error_type, is_subtask, http_status, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
           toString(cost_usd) AS cost_usd, toString(ifNull(cost_estimate_usd, 0)) AS cost_estimate_usd, ifNull(duration_ms, 0) AS duration_ms, tool_calls
         FROM ${db}.requests
         WHERE started_at >= {from:DateTime64(3, 'UTC')} AND started_at <= {to:DateTime64(3, 'UTC')} AND request_id IN {ids:Array(String)}
         ORDER BY ingested_at DESC LIMIT 1 BY request_id`,
        { ...bounds(requests.map((r) => r.startedAt)), ids: requests.map((r) => r.requestId) },
      );
      for (const r of rows) out.set(`request:${r.id}`, storedRequest(r));
    }
    if (messages.length > 0) {
      const rows = await this.store.query<{ id: string; fingerprint: string; day: string; tenant: string; source: string; agent: string; channel: string }>(
        `SELECT message_id AS id, toString(fingerprint) AS fingerprint, toString(toDate(created_at)) AS day, tenant, source, agent, channel
         FROM ${db}.messages
         WHERE created_at >= {from:DateTime64(3, 'UTC')} AND created_at <= {to:DateTime64(3, 'UTC')} AND message_id IN {ids:Array(String)}
         ORDER BY ingested_at DESC LIMIT 1 BY message_id`,
        { ...bounds(messages.map((m) => m.createdAt)), ids: messages.map((m) => m.messageId) },
      );
      for (const m of rows) {
        out.set(`message:${m.id}`, {
          fingerprint: m.fingerprint, amounts: null, httpStatus: null,
          retraction: { table: 'messages_daily', row: { day: m.day, tenant: m.tenant, source: m.source, agent: m.agent, channel: m.channel, messages: -1 } },
        });
      }
    }
    return out;
  }

  /**
   * Writes `events`. `stored` is what storedVersions() found for them (looked up here when the
   * caller did not): versions already stored are skipped, newer ones replace them.
   */
  async write(events: readonly CanonicalEvent[], stored?: ReadonlyMap<string, StoredVersion>): Promise<void> {
    const versions = stored ?? (await this.storedVersions(events.filter(isVersioned)));
    const retractions = new Map<string, Record<string, unknown>[]>();
    // A version is written unless the store holds exactly it; replacing one retracts it.
    const toWrite = <E extends VersionedEvent>(e: E): boolean => {
      const found = versions.get(versionKey(e));
      if (found === undefined) return true;
      if (found.fingerprint === fingerprint(e)) return false;
      if (found.retraction) {
        const list = retractions.get(found.retraction.table) ?? [];
        list.push(found.retraction.row);
        retractions.set(found.retraction.table, list);
      }
      return true;
    };
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

    const freshRequests = requests.filter(toWrite);
    const freshMessages = messages.filter(toWrite);
    // The older versions' amounts leave the rollups first: a crash between the two inserts
    // leaves the rollups short, never doubled, and recover() rebuilds them from the newest
    // versions (store/recover.ts).
    for (const [table, rows] of retractions) await this.store.insert(table, rows);
    if (freshRequests.length > 0) {
      // Error activity events follow from these rows (materialized view error_events_mv).
      await this.insert('requests', freshRequests.map(requestRow));
    }
    if (freshMessages.length > 0) {
      await this.insert('messages', freshMessages.map((m) => ({
        fingerprint: fingerprint(m), tenant: m.tenant, source: m.source, conversation_id: m.conversationId, message_id: m.messageId, role: m.role,
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
