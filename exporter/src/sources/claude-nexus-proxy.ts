// Claude Nexus Proxy: one api_requests row per proxied Claude API call.
// Tenant = domain (project_id in newer versions: `columns: { domain: project_id }`).
// Read by the `timestamp` index (request start); rows commit when the response ends, which
// the incremental reader handles. Request headers are never selected: they carry API keys.
import type { AccountWindow, CanonicalEvent, MessageEvent, RequestEvent } from '../model/events.ts';
import type { BulkSpec, IncrementalStream, MapContext, SnapshotQuery, SourceAdapter } from './adapter.ts';
import {
  SourceNames,
  contentText,
  httpStatusOf,
  messageText,
  nonNegativeIntegerOrNull,
  nonNegativeOrNull,
  optionalString,
  readerSettings,
  requiredTimestamp,
  tokenCount,
} from './adapter.ts';
import { RowRejected } from '../quality/row-quality.ts';
import { REQUESTS_TARGET } from '../store/bulk-load.ts';

const SOURCE = 'claude-nexus-proxy' as const;
/** Claude Nexus Proxy's rolling usage window per account. */
export const ACCOUNT_WINDOW_SECONDS = 5 * 3600;

/** Anthropic's error class from the response body's `error` object, else the HTTP status. */
function errorTypeOf(status: number | null, responseError: unknown, error: string | null): string | null {
  const type = responseError && typeof responseError === 'object' ? (responseError as { type?: unknown }).type : undefined;
  if (typeof type === 'string' && type.length > 0) return type;
  if (status !== null && status >= 400) return `http_${status}`;
  if (error) return 'proxy_error';
  return null;
}

function mapRow(row: Record<string, unknown>, ctx: MapContext): CanonicalEvent[] {
  const requestId = optionalString(row.request_id);
  if (requestId === null) throw new RowRejected('missing_field', 'request_id is missing');
  const tenant = optionalString(row.domain);
  if (tenant === null) throw new RowRejected('missing_field', 'domain (tenant) is empty');
  const startedAt = requiredTimestamp(row.timestamp, 'timestamp', ctx);
  const usage = {
    inputTokens: tokenCount(row.input_tokens, 'input_tokens', ctx),
    outputTokens: tokenCount(row.output_tokens, 'output_tokens', ctx),
    cacheReadTokens: tokenCount(row.cache_read_input_tokens, 'cache_read_input_tokens', ctx),
    cacheWriteTokens: tokenCount(row.cache_creation_input_tokens, 'cache_creation_input_tokens', ctx),
  };
  // The usage block as the API returned it (usage_data): which cache writes were for one
  // hour, server tool calls, and the service tier.
  const billing = {
    cacheWrite1hTokens: Math.min(nonNegativeIntegerOrNull(row.cache_write_1h) ?? 0, usage.cacheWriteTokens),
    webSearchRequests: nonNegativeIntegerOrNull(row.web_search_requests) ?? 0,
    serviceTier: optionalString(row.service_tier),
  };
  const model = optionalString(row.model) ?? 'unknown';
  const cost = ctx.pricing.cost(model, { ...usage, ...billing }, { at: startedAt, tenant });
  if (cost === undefined) ctx.repaired('unknown_model', `no price for model "${model}"; cost left empty`);
  const status = httpStatusOf(row.response_status);
  const durationMs = nonNegativeOrNull(row.duration_ms);
  const conversationId = optionalString(row.conversation_id);
  const request: RequestEvent = {
    kind: 'request',
    source: SOURCE,
    tenant,
    requestId,
    conversationId,
    branchId: optionalString(row.branch_id),
    parentRequestId: optionalString(row.parent_request_id),
    parentTaskRequestId: optionalString(row.parent_task_request_id),
    isSubtask: row.is_subtask === true,
    account: optionalString(row.account_id),
    user: optionalString(row.api_key_hash),
    model,
    provider: 'anthropic',
    operation: 'chat',
    httpStatus: status,
    errorType: errorTypeOf(status, row.response_error, optionalString(row.error)),
    ...usage,
    ...billing,
    costUsd: cost ?? null,
    costEstimateUsd: cost ?? null,
    pricedAs: ctx.pricing.pricedAs(model),
    durationMs,
    timeToFirstTokenMs: nonNegativeOrNull(row.first_token_ms),
    toolCalls: nonNegativeIntegerOrNull(row.tool_call_count) ?? 0,
    streaming: row.response_streaming === true,
    rateLimitStatus: optionalString(row.ratelimit_status),
    startedAt,
    endedAt: durationMs === null ? null : new Date(Date.parse(startedAt) + durationMs).toISOString(),
  };
  const events: CanonicalEvent[] = [request];
  if (conversationId !== null) events.push(...messages(row, request, conversationId, ctx));
  return events;
}

/**
 * The turn a request carries: the last message of the request body (usually the user's) and
 * the assistant's reply from the response body. Earlier messages were carried by earlier
 * requests of the same conversation.
 */
function messages(row: Record<string, unknown>, request: RequestEvent, conversationId: string, ctx: MapContext): MessageEvent[] {
  const out: MessageEvent[] = [];
  const count = nonNegativeIntegerOrNull(row.message_count);
  const last = row.last_message as { role?: unknown; content?: unknown } | null;
  const base = {
    kind: 'message' as const,
    source: SOURCE,
    tenant: request.tenant,
    conversationId,
    channel: 'api',
    agent: null,
    user: request.user,
    requestId: request.requestId,
  };
  if (last && typeof last === 'object') {
    out.push({
      ...base,
      messageId: `${request.requestId}:request`,
      role: typeof last.role === 'string' ? last.role : 'user',
      content: contentText(messageText(last.content), ctx),
      sequence: count === null ? null : Math.max(0, count - 1),
      createdAt: request.startedAt,
    });
  }
  if (row.response_content !== null && row.response_content !== undefined) {
    out.push({
      ...base,
      messageId: `${request.requestId}:response`,
      role: 'assistant',
      content: contentText(messageText(row.response_content), ctx),
      sequence: count,
      createdAt: request.endedAt ?? request.startedAt,
    });
  }
  return out;
}

/**
 * The bulk backfill of api_requests: the same fields as mapRow, taken from the same columns.
 * PostgreSQL derives the error class (the JSON bodies stay in PostgreSQL); ClickHouse does
 * the rest, cost included. Rows with a conversation still pass through mapRow for their
 * messages (content redaction is JavaScript's).
 */
function bulkSpec(names: SourceNames): BulkSpec {
  const col = (reference: string) => names.column(reference);
  const raw = (reference: string) => (col(reference) === null ? 'NULL' : `t.${col(reference)}`);
  const status = raw('response_status');
  const errorType = (() => {
    const body = col('response_body') === null ? null : `t.${col('response_body')}`;
    const fromBody = body === null ? [] : [`WHEN jsonb_typeof(${body}->'error'->'type') = 'string' AND ${body}->'error'->>'type' <> '' THEN ${body}->'error'->>'type'`];
    const fromError = col('error') === null ? [] : [`WHEN ${raw('error')} <> '' THEN 'proxy_error'`];
    return `CASE ${[...fromBody, `WHEN ${status} >= 400 THEN 'http_' || ${status}`, ...fromError].join(' ')} END`;
  })();
  const tokens = ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'];
  const headers = col('response_headers') === null ? 'NULL' : `t.${col('response_headers')}->>'anthropic-ratelimit-unified-status'`;
  const nonNegative = (c: string) => `if(${c} >= 0, ${c}, NULL)`;
  // The usage block's extras as JSON text: a clean row has each absent, null or a plain
  // non-negative integer (anything else goes through mapRow).
  const usage = (path: string) => (col('usage_data') === null ? 'NULL' : `(t.${col('usage_data')}${path})::text`);
  const jsonCount = (c: string) => `(${c} IS NULL OR ${c} = 'null' OR match(${c}, '^[0-9]{1,15}$'))`;
  const count = (c: string) => `toUInt64OrZero(ifNull(${c}, ''))`;
  const write1h = `least(${count('cache_write_1h')}, toUInt64(greatest(ifNull(cache_creation_input_tokens, 0), 0)))`;
  return {
    columns: [
      { name: 'request_id', sql: raw('request_id'), type: 'String' },
      { name: 'domain', sql: raw('domain'), type: 'Nullable(String)' },
      { name: 'ts', sql: raw('timestamp'), type: "DateTime64(6, 'UTC')" },
      { name: 'model', sql: raw('model'), type: 'Nullable(String)' },
      { name: 'response_status', sql: status, type: 'Nullable(Int64)' },
      { name: 'response_streaming', sql: raw('response_streaming'), type: 'Nullable(Bool)' },
      ...tokens.map((name) => ({ name, sql: raw(name), type: 'Nullable(Int64)' })),
      { name: 'first_token_ms', sql: raw('first_token_ms'), type: 'Nullable(Float64)' },
      { name: 'duration_ms', sql: raw('duration_ms'), type: 'Nullable(Float64)' },
      { name: 'error_type', sql: errorType, type: 'Nullable(String)' },
      { name: 'tool_call_count', sql: raw('tool_call_count'), type: 'Nullable(Float64)' },
      { name: 'conversation_id', sql: raw('conversation_id'), type: 'Nullable(String)' },
      { name: 'branch_id', sql: raw('branch_id'), type: 'Nullable(String)' },
      { name: 'parent_task_request_id', sql: raw('parent_task_request_id'), type: 'Nullable(String)' },
      { name: 'is_subtask', sql: raw('is_subtask'), type: 'Nullable(Bool)' },
      { name: 'account_id', sql: raw('account_id'), type: 'Nullable(String)' },
      { name: 'api_key_hash', sql: raw('api_key_hash'), type: 'Nullable(String)' },
      { name: 'parent_request_id', sql: raw('parent_request_id'), type: 'Nullable(String)' },
      { name: 'rate_limit_status', sql: headers, type: 'Nullable(String)' },
      { name: 'cache_write_1h', sql: usage("->'cache_creation'->'ephemeral_1h_input_tokens'"), type: 'Nullable(String)' },
      { name: 'web_searches', sql: usage("->'server_tool_use'->'web_search_requests'"), type: 'Nullable(String)' },
      { name: 'service_tier', sql: col('usage_data') === null ? 'NULL' : `t.${col('usage_data')}->>'service_tier'`, type: 'Nullable(String)' },
    ],
    models: { model: raw('model') },
    // The cost, priced once per row at its own time and tenant (NULL: no price).
    derived: (ctx) => `${ctx.pricing.clickhouseCost(ctx.models, {
      model: "ifNull(model, '')", at: 'ts', tenant: "ifNull(domain, '')",
      input: 'greatest(ifNull(input_tokens, 0), 0)', output: 'greatest(ifNull(output_tokens, 0), 0)',
      cacheRead: 'greatest(ifNull(cache_read_input_tokens, 0), 0)', cacheWrite: 'greatest(ifNull(cache_creation_input_tokens, 0), 0)',
      cacheWrite1h: write1h, webSearches: count('web_searches'), serviceTier: "ifNull(service_tier, '')",
    })} AS cost, ${ctx.pricing.clickhousePricedAs(ctx.models, { model: "ifNull(model, '')" })} AS priced_as`,
    target: REQUESTS_TARGET,
    rowId: 'request_id',
    mapping: () => [
      "ifNull(domain, '')", `'${SOURCE}'`, 'request_id', "toDateTime64(ts, 3, 'UTC')",
      "if(duration_ms >= 0, fromUnixTimestamp64Milli(toUnixTimestamp64Milli(toDateTime64(ts, 3, 'UTC')) + toInt64(floor(assumeNotNull(duration_ms))), 'UTC'), NULL)",
      "ifNull(conversation_id, '')", "ifNull(branch_id, '')", "ifNull(parent_request_id, '')", "ifNull(parent_task_request_id, '')",
      'ifNull(is_subtask, false)', "ifNull(account_id, '')", "ifNull(api_key_hash, '')", "ifNull(model, 'unknown')", "'anthropic'", "'chat'",
      'toUInt16(ifNull(response_status, 0))', "ifNull(error_type, '')",
      ...['input_tokens', 'output_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens'].map((c) => `toUInt64(greatest(ifNull(${c}, 0), 0))`),
      'ifNull(cost, 0)', 'cost IS NOT NULL', nonNegative('duration_ms'), nonNegative('first_token_ms'),
      'toUInt32(greatest(ifNull(tool_call_count, 0), 0))', 'ifNull(response_streaming, false)', "ifNull(rate_limit_status, '')",
      write1h, `toUInt32(${count('web_searches')})`, "ifNull(service_tier, '')", 'cost', 'priced_as',
    ].join(', '),
    // What mapRow would repair or reject: no tenant, NULL or negative tokens, a timestamp in
    // the future, a model without a price (or not in ctx.models), a status that is not an
    // HTTP status, a usage block whose counts are not plain integers.
    clean: (ctx) => [
      "ifNull(domain, '') != ''",
      ...tokens.map((name) => `ifNull(${name} >= 0, false)`),
      `ts <= toDateTime64('${ctx.futureLimit.replace('T', ' ').replace('Z', '')}', 6, 'UTC')`,
      'model IS NOT NULL AND cost IS NOT NULL',
      jsonCount('cache_write_1h'), jsonCount('web_searches'),
      '(response_status IS NULL OR (response_status >= 1 AND response_status <= 65535))',
    ].join(' AND '),
    otherEvents: 'conversation_id IS NOT NULL',
  };
}

export const claudeNexusProxy: SourceAdapter = {
  type: SOURCE,
  requiredTables: () => ['api_requests'],
  forbiddenColumns: { api_requests: ['headers'] },
  reads: {
    api_requests: [
      'xmin',
      'request_id', 'domain', 'timestamp', 'model', 'request_type', 'response_status', 'response_streaming', 'input_tokens', 'output_tokens',
      'cache_creation_input_tokens', 'cache_read_input_tokens', 'first_token_ms', 'duration_ms', 'error', 'tool_call_count', 'conversation_id',
      'branch_id', 'message_count', 'parent_task_request_id', 'is_subtask', 'account_id', 'api_key_hash', 'parent_request_id',
      'response_headers', 'response_body', 'body', 'usage_data',
    ],
  },
  build(source) {
    const names = new SourceNames(source);
    const selectList = [
      names.select('request_id'),
      names.select('domain'),
      names.select('timestamp'),
      names.select('model'),
      names.select('response_status'),
      names.select('response_streaming'),
      names.select('input_tokens'),
      names.select('output_tokens'),
      names.select('cache_creation_input_tokens'),
      names.select('cache_read_input_tokens'),
      names.select('first_token_ms'),
      names.select('duration_ms'),
      names.expr('error', 'left($, 1000)', 'error'),
      names.select('tool_call_count'),
      names.select('conversation_id'),
      names.select('branch_id'),
      names.select('message_count'),
      names.select('parent_task_request_id'),
      names.select('is_subtask'),
      names.select('account_id'),
      names.select('api_key_hash'),
      names.select('parent_request_id'),
      names.expr('response_headers', "$->>'anthropic-ratelimit-unified-status'", 'ratelimit_status'),
      names.expr('response_body', "$->'error'", 'response_error'),
      names.expr('response_body', "$->'content'", 'response_content'),
      names.expr('body', "$->'messages'->-1", 'last_message'),
      names.expr('usage_data', "$->'cache_creation'->'ephemeral_1h_input_tokens'", 'cache_write_1h'),
      names.expr('usage_data', "$->'server_tool_use'->'web_search_requests'", 'web_search_requests'),
      names.expr('usage_data', "$->>'service_tier'", 'service_tier'),
    ].join(', ');
    const stream: IncrementalStream = {
      kind: 'incremental',
      table: 'api_requests',
      spec: {
        id: `${source.name}/api_requests`,
        table: names.table('api_requests'),
        cursorColumn: names.required('timestamp'),
        idColumn: names.required('request_id'),
        selectList,
        // The proxy inserts the row when the request arrives and stores the response with an
        // UPDATE (services/proxy/src/storage/writer.ts: storeRequest, then storeResponse, then
        // markTaskToolInvocations): a row is complete once it has its response status.
        ...(names.column('response_status') === null ? {} : { complete: `t.${names.column('response_status')} IS NOT NULL` }),
        filter:
          source.requestTypes.length > 0 && names.column('request_type') !== null
            ? (param) => `t.${names.column('request_type')} = ANY(${param(source.requestTypes)}::text[])`
            : undefined,
        ...readerSettings(source),
      },
      rowId: (row) => String(row.request_id),
      map: mapRow,
      bulk: bulkSpec(names),
      stored: { table: 'requests', eventKind: 'request', idColumn: 'request_id', timeColumn: 'started_at', source: SOURCE },
    };
    // The proxy limits output tokens per upstream account over a rolling 5-hour window. The
    // sum is taken in SQL on the timestamp index, so it is right from the first read after a
    // start, with no history to rebuild in memory.
    const account = names.column('account_id');
    const snapshots: SnapshotQuery[] = account === null ? [] : [{
      kind: 'snapshot',
      id: `${source.name}/api_requests_5h_window`,
      table: 'api_requests',
      sql: `SELECT t.${account} AS account, coalesce(sum(t.${names.required('output_tokens')}), 0)::bigint AS output_tokens
        FROM ${names.table('api_requests')} t
        WHERE t.${names.required('timestamp')} > now() - interval '${ACCOUNT_WINDOW_SECONDS} seconds' AND t.${account} IS NOT NULL
        GROUP BY 1`,
      params: [],
      mapRow(row, _ctx, observedAt): CanonicalEvent[] {
        const account = optionalString(row.account);
        if (account === null) throw new RowRejected('missing_field', 'account_id is empty');
        const window: AccountWindow = {
          kind: 'account_window', source: SOURCE, account,
          outputTokens: nonNegativeIntegerOrNull(row.output_tokens) ?? 0, windowSeconds: ACCOUNT_WINDOW_SECONDS, observedAt,
        };
        return [window];
      },
    }];
    return { streams: [stream], snapshots };
  },
};
