// LiteLLM proxy: "LiteLLM_SpendLogs" (one row per request, successful or failed, with its own
// spend in USD), read by its "startTime" index, and "LiteLLM_ErrorLogs" (details of failed
// calls: activities, not requests), which has no index but its primary key and is read rarely.
// Tenant = team_id, else organization_id, else "default" (LiteLLM writes '' for a missing team).
// Not selected: api_key (hashed, but still a credential identifier), messages and response
// bodies (LiteLLM stores them only when store_prompts_in_spend_logs is on).
import type { ActivityEvent, CanonicalEvent, RequestEvent } from '../model/events.ts';
import type { BulkSpec, IncrementalStream, MapContext, SourceAdapter } from './adapter.ts';
import { clickhouseString } from '../store/literal.ts';
import { ACTIVITY_SOURCE_ID, SourceNames, httpStatusOf, jsonValue, nonNegativeIntegerOrNull, nonNegativeOrNull, optionalString, readerSettings, requiredTimestamp, tokenCount, toIso } from './adapter.ts';
import { RowRejected } from '../quality/row-quality.ts';
import { ACTIVITY_TARGET, REQUESTS_TARGET, activityMappingSql, jsonSafeSql } from '../store/bulk-load.ts';

const SOURCE = 'litellm' as const;

/** LiteLLM's custom_llm_provider to OpenTelemetry's gen_ai.provider.name (a Map: row values must not reach Object.prototype). */
const PROVIDERS = new Map(Object.entries({
  openai: 'openai',
  text_completion_openai: 'openai',
  azure: 'azure.ai.openai',
  azure_ai: 'azure.ai.inference',
  anthropic: 'anthropic',
  bedrock: 'aws.bedrock',
  vertex_ai: 'gcp.vertex_ai',
  vertex_ai_beta: 'gcp.vertex_ai',
  gemini: 'gcp.gemini',
  cohere: 'cohere',
  cohere_chat: 'cohere',
  mistral: 'mistral_ai',
  groq: 'groq',
  deepseek: 'deepseek',
  xai: 'x_ai',
  perplexity: 'perplexity',
  watsonx: 'ibm.watsonx.ai',
}));

/** LiteLLM's call_type to gen_ai.operation.name. */
function operationOf(callType: string | null): string {
  if (!callType) return 'chat';
  if (callType.includes('embedding')) return 'embeddings';
  if (callType.includes('image_generation')) return 'image_generation';
  if (callType === 'text_completion' || callType === 'atext_completion') return 'text_completion';
  return 'chat';
}

function durationBetween(start: string | null, end: string | null): number | null {
  if (start === null || end === null) return null;
  const ms = Date.parse(end) - Date.parse(start);
  return ms >= 0 ? ms : null;
}

function numberAt(object: unknown, ...path: string[]): number {
  let value: unknown = object;
  for (const key of path) {
    if (!value || typeof value !== 'object') return 0;
    value = (value as Record<string, unknown>)[key];
  }
  return nonNegativeIntegerOrNull(value) ?? 0;
}

/**
 * The spend LiteLLM recorded: NULL is 0 (as SQL's SUM reads it); NaN, infinite or negative
 * spend is not a cost, so the request's cost is unknown, counted as a repair (it used to be
 * stored as 0 with no trace).
 */
function spendOf(value: unknown, ctx: MapContext): number | null {
  if (value === null || value === undefined) return 0;
  const spend = nonNegativeOrNull(value);
  if (spend === null) ctx.repaired('invalid_cost', `spend is ${optionalString(value)?.slice(0, 40)}: not an amount, cost unknown`);
  return spend;
}

function mapSpendLog(row: Record<string, unknown>, ctx: MapContext): CanonicalEvent[] {
  const requestId = optionalString(row.request_id);
  if (requestId === null) throw new RowRejected('missing_field', 'request_id is missing');
  const startedAt = requiredTimestamp(row.startTime, 'startTime', ctx);
  const endedAt = toIso(row.endTime);
  const firstToken = toIso(row.completionStartTime);
  const metadata = jsonValue(row.metadata, 'metadata', ctx) as Record<string, unknown> | null;
  const usage = metadata?.usage_object;
  // Tokens before spend: a row rejected for its tokens is not also counted as repaired.
  const inputTokens = tokenCount(row.prompt_tokens, 'prompt_tokens', ctx);
  const outputTokens = tokenCount(row.completion_tokens, 'completion_tokens', ctx);
  const spend = spendOf(row.spend, ctx);
  const status = optionalString(row.status);
  const failed = status !== null && status !== 'success';
  const errorInfo = (metadata?.error_information ?? null) as { error_class?: unknown; error_code?: unknown } | null;
  const model = optionalString(row.model) ?? optionalString(row.model_group) ?? 'unknown';
  const cacheReadTokens = numberAt(usage, 'cache_read_input_tokens') || numberAt(usage, 'prompt_tokens_details', 'cached_tokens');
  const cacheWriteTokens = numberAt(usage, 'cache_creation_input_tokens');
  // The catalog's list price beside the spend LiteLLM recorded (prompt_tokens includes the
  // cached tokens; the rest is uncached input).
  const provider = optionalString(row.custom_llm_provider);
  const estimate = ctx.pricing.cost(model, {
    inputTokens: Math.max(0, inputTokens - cacheReadTokens - cacheWriteTokens), outputTokens, cacheReadTokens, cacheWriteTokens,
  }, { at: startedAt, tenant: null, provider });
  const event: RequestEvent = {
    kind: 'request',
    source: SOURCE,
    tenant: optionalString(row.team_id) ?? optionalString(row.organization_id) ?? 'default',
    requestId,
    conversationId: optionalString(row.session_id),
    branchId: null,
    parentRequestId: null,
    parentTaskRequestId: null,
    isSubtask: false,
    account: optionalString(row.api_base),
    user: optionalString(row.end_user) ?? optionalString(row.user),
    model,
    provider: PROVIDERS.get(optionalString(row.custom_llm_provider) ?? '') ?? optionalString(row.custom_llm_provider) ?? 'unknown',
    operation: operationOf(optionalString(row.call_type)),
    httpStatus: failed ? httpStatusOf(errorInfo?.error_code) : 200,
    errorType: failed ? (optionalString(errorInfo?.error_class) ?? 'failure') : null,
    inputTokens,
    outputTokens,
    cacheReadTokens,
    cacheWriteTokens,
    cacheWrite1hTokens: 0,
    webSearchRequests: 0,
    serviceTier: null,
    // To the nano-dollar, as ClickHouse stores it (Decimal(18, 9)): /metrics and the event store add the same amounts.
    costUsd: spend === null ? null : Number(spend.toFixed(9)),
    costEstimateUsd: estimate ?? null,
    pricedAs: ctx.pricing.pricedAs(model, provider),
    durationMs: nonNegativeOrNull(row.request_duration_ms) ?? durationBetween(startedAt, endedAt),
    timeToFirstTokenMs: durationBetween(startedAt, firstToken),
    toolCalls: 0,
    streaming: firstToken !== null && firstToken !== endedAt,
    rateLimitStatus: null,
    startedAt,
    endedAt,
  };
  return [event];
}

/**
 * A row of the error log: details of a call that failed (exception type, status code), not a
 * request. The failed call is already a request of its own, a SpendLogs row with status
 * 'failure'; the error log's request_id is a fresh uuid, so the two cannot be joined. Its
 * model_group is not a model the SpendLogs know (gpt-4o vs azure/gpt-4o): kept in the details
 * only, never as a label.
 */
function mapErrorLog(row: Record<string, unknown>, ctx: MapContext): CanonicalEvent[] {
  const requestId = optionalString(row.request_id);
  if (requestId === null) throw new RowRejected('missing_field', 'request_id is missing');
  const startedAt = requiredTimestamp(row.startTime, 'startTime', ctx);
  const endedAt = toIso(row.endTime);
  const duration = durationBetween(startedAt, endedAt);
  const event: ActivityEvent = {
    kind: 'activity',
    source: SOURCE,
    // The team is only inside request_kwargs, which also holds the prompt: never read.
    tenant: 'default',
    activityId: requestId,
    activityType: 'llm_call_failed',
    action: 'call',
    status: 'failed',
    agent: null,
    resourceType: 'llm_call',
    resourceName: null,
    durationSeconds: duration === null ? null : duration / 1000,
    details: {
      exception_type: optionalString(row.exception_type),
      status_code: httpStatusOf(optionalString(row.status_code)),
      model_group: optionalString(row.model_group),
      litellm_model_name: optionalString(row.litellm_model_name),
      api_base: optionalString(row.api_base),
    },
    occurredAt: startedAt,
  };
  return [event];
}

/**
 * The bulk backfill of ErrorLogs: the same activity event as mapErrorLog, from the same
 * columns. Clean: an id, a start not in the future, a status code that is empty or three digits
 * (anything else is parsed by mapErrorLog), text that JSON writes alike in both engines.
 */
function errorBulkSpec(names: SourceNames): BulkSpec {
  const raw = (reference: string) => (names.column(reference) === null ? 'NULL' : `t.${names.column(reference)}`);
  const text = (reference: string) => `nullif(${raw(reference)}::text, '')`;
  const details = ['exception_type', 'model_group', 'litellm_model_name', 'api_base'];
  const time = (c: string) => `toDateTime64(${c}, 3, 'UTC')`;
  return {
    columns: [
      { name: 'request_id', sql: text('request_id'), type: 'Nullable(String)' },
      { name: 'ts', sql: raw('startTime'), type: "Nullable(DateTime64(6, 'UTC'))" },
      { name: 'end_ts', sql: raw('endTime'), type: "Nullable(DateTime64(6, 'UTC'))" },
      { name: 'status_code', sql: text('status_code'), type: 'Nullable(String)' },
      ...details.map((name) => ({ name, sql: text(name), type: 'Nullable(String)' })),
    ],
    target: ACTIVITY_TARGET,
    rowId: 'request_id',
    derived: () => '',
    mapping: () => activityMappingSql({
      tenant: "'default'", source: clickhouseString(SOURCE), id: 'assumeNotNull(request_id)', type: "'llm_call_failed'", time: 'assumeNotNull(ts)',
      agent: "''", resource: "'llm_call'", action: "'call'", status: "'failed'", resourceName: 'NULL',
      duration: `if(end_ts IS NOT NULL AND ${time('end_ts')} >= ${time('ts')}, (toUnixTimestamp64Milli(${time('assumeNotNull(end_ts)')}) - toUnixTimestamp64Milli(${time('assumeNotNull(ts)')})) / 1000, NULL)`,
      details: [
        ['exception_type', 'exception_type'], ['status_code', 'if(status_code IS NULL, NULL, toUInt16OrNull(status_code))', 'number'],
        ['model_group', 'model_group'], ['litellm_model_name', 'litellm_model_name'], ['api_base', 'api_base'],
      ],
    }),
    clean: (ctx) => [
      'request_id IS NOT NULL', 'ts IS NOT NULL', `ts <= toDateTime64('${ctx.futureLimit.replace('T', ' ').replace('Z', '')}', 6, 'UTC')`,
      "(status_code IS NULL OR match(status_code, '^[1-9][0-9]{2}$'))", ...details.map(jsonSafeSql),
    ].join(' AND '),
    otherEvents: 'false',
  };
}

/**
 * The bulk backfill of SpendLogs: the same fields as mapSpendLog, from the same columns.
 * PostgreSQL takes the JSON fields apart (metadata stays in PostgreSQL); ClickHouse does the
 * rest. A row is clean only where both paths provably agree: spend a finite amount under
 * 10^9 (read from PostgreSQL's shortest text of the double, rounded to 9 decimals as
 * toFixed(9) does), token counts present and not negative, a status code of three digits, an
 * error class that is a string, usage counts that are JSON numbers. Anything else goes
 * through mapSpendLog.
 */
function spendBulkSpec(names: SourceNames): BulkSpec {
  const raw = (reference: string) => (names.column(reference) === null ? 'NULL' : `t.${names.column(reference)}`);
  const text = (reference: string) => `nullif(${raw(reference)}, '')`;
  const metadata = names.column('metadata') === null ? 'NULL::jsonb' : raw('metadata');
  const json = (path: string) => `${metadata}${path}`;
  // A usage count as numberAt() reads it: a JSON number in [0, 2^53) truncated, other JSON
  // numbers and non-numbers 0; -1 marks a JSON string (JavaScript's Number() parses those).
  const count = (path: string) => `CASE jsonb_typeof(${json(path)}) WHEN 'number' THEN CASE WHEN (${json(path)})::numeric >= 0 AND (${json(path)})::numeric <= 9007199254740991
    THEN trunc((${json(path)})::numeric)::bigint ELSE 0 END WHEN 'string' THEN -1 ELSE 0 END`;
  const time = (column: string) => `toDateTime64(${column}, 3, 'UTC')`;
  const providers = [...PROVIDERS.entries()];
  const fromStart = (column: string) => `if(${column} IS NOT NULL AND ${time(column)} >= ${time('ts')}, toFloat64(toUnixTimestamp64Milli(${time(column)}) - toUnixTimestamp64Milli(${time('ts')})), NULL)`;
  return {
    columns: [
      { name: 'request_id', sql: raw('request_id'), type: 'String' },
      { name: 'team', sql: text('team_id'), type: 'Nullable(String)' },
      { name: 'organization', sql: text('organization_id'), type: 'Nullable(String)' },
      { name: 'ts', sql: raw('startTime'), type: "DateTime64(6, 'UTC')" },
      { name: 'end_ts', sql: raw('endTime'), type: "Nullable(DateTime64(6, 'UTC'))" },
      { name: 'first_ts', sql: raw('completionStartTime'), type: "Nullable(DateTime64(6, 'UTC'))" },
      { name: 'duration_ms', sql: raw('request_duration_ms'), type: 'Nullable(Float64)' },
      { name: 'model', sql: text('model'), type: 'Nullable(String)' },
      { name: 'model_group', sql: text('model_group'), type: 'Nullable(String)' },
      { name: 'provider', sql: text('custom_llm_provider'), type: 'Nullable(String)' },
      { name: 'call_type', sql: text('call_type'), type: 'Nullable(String)' },
      { name: 'api_base', sql: text('api_base'), type: 'Nullable(String)' },
      { name: 'end_user', sql: text('end_user'), type: 'Nullable(String)' },
      { name: 'user', sql: text('user'), type: 'Nullable(String)' },
      { name: 'session_id', sql: text('session_id'), type: 'Nullable(String)' },
      { name: 'status', sql: text('status'), type: 'Nullable(String)' },
      { name: 'prompt_tokens', sql: raw('prompt_tokens'), type: 'Nullable(Int64)' },
      { name: 'completion_tokens', sql: raw('completion_tokens'), type: 'Nullable(Int64)' },
      { name: 'spend', sql: `${raw('spend')}::text`, type: 'Nullable(String)' },
      { name: 'error_class', sql: `CASE WHEN jsonb_typeof(${json("->'error_information'->'error_class'")}) = 'string' THEN ${json("->'error_information'->>'error_class'")} END`, type: 'Nullable(String)' },
      { name: 'error_class_plain', sql: `coalesce(jsonb_typeof(${json("->'error_information'->'error_class'")}) IN ('string', 'null'), true)`, type: 'Bool' },
      { name: 'error_code', sql: `CASE WHEN jsonb_typeof(${json("->'error_information'->'error_code'")}) IN ('string', 'number') THEN ${json("->'error_information'->>'error_code'")} END`, type: 'Nullable(String)' },
      { name: 'cache_read', sql: count("->'usage_object'->'cache_read_input_tokens'"), type: 'Int64' },
      { name: 'cached', sql: count("->'usage_object'->'prompt_tokens_details'->'cached_tokens'"), type: 'Int64' },
      { name: 'cache_write', sql: count("->'usage_object'->'cache_creation_input_tokens'"), type: 'Int64' },
    ],
    models: { model: `coalesce(${text('model')}, ${text('model_group')}, 'unknown')`, provider: text('custom_llm_provider') },
    derived: (ctx) => {
      const cached = 'toInt64(if(cache_read != 0, cache_read, cached))';
      const priced = { model: "coalesce(model, model_group, 'unknown')", provider: "ifNull(provider, '')" };
      const estimate = ctx.pricing.clickhouseCost(ctx.models, {
        ...priced, at: 'ts', tenant: "''",
        input: `greatest(toInt64(ifNull(prompt_tokens, 0)) - ${cached} - toInt64(cache_write), 0)`, output: 'greatest(ifNull(completion_tokens, 0), 0)',
        cacheRead: cached, cacheWrite: 'cache_write', cacheWrite1h: '0', webSearches: '0', serviceTier: "''",
      });
      return `toDecimal128OrNull(ifNull(spend, ''), 20) AS spend_exact, ifNull(status != 'success', false) AS failed, ${estimate} AS estimate, ${ctx.pricing.clickhousePricedAs(ctx.models, priced)} AS priced_as`;
    },
    target: REQUESTS_TARGET,
    rowId: 'request_id',
    mapping: () => [
      "coalesce(team, organization, 'default')", `'${SOURCE}'`, 'request_id', time('ts'), `if(end_ts IS NULL, NULL, ${time('end_ts')})`,
      "ifNull(session_id, '')", "''", "''", "''", 'false', "ifNull(api_base, '')", "coalesce(end_user, user, '')",
      "coalesce(model, model_group, 'unknown')",
      `if(provider IS NULL, 'unknown', transform(assumeNotNull(provider), [${providers.map(([k]) => clickhouseString(k)).join(', ')}], [${providers.map(([, v]) => clickhouseString(v)).join(', ')}], assumeNotNull(provider)))`,
      "multiIf(call_type IS NULL, 'chat', position(call_type, 'embedding') > 0, 'embeddings', position(call_type, 'image_generation') > 0, 'image_generation', call_type IN ('text_completion', 'atext_completion'), 'text_completion', 'chat')",
      'toUInt16(if(failed, ifNull(toUInt16OrNull(error_code), 0), 200))', "if(failed, coalesce(error_class, 'failure'), '')",
      'toUInt64(prompt_tokens)', 'toUInt64(completion_tokens)', 'toUInt64(if(cache_read != 0, cache_read, cached))', 'toUInt64(cache_write)',
      // Clamped first: the mapping runs on every row, clean or not, and a spend past 10^9 would
      // make the conversion throw for the whole chunk.
      'toDecimal64(round(least(greatest(ifNull(spend_exact, 0), 0), 999999999), 9), 9)', 'true',
      `if(duration_ms >= 0, duration_ms, ${fromStart('end_ts')})`, fromStart('first_ts'),
      'toUInt32(0)', `first_ts IS NOT NULL AND (end_ts IS NULL OR ${time('first_ts')} != ${time('end_ts')})`, "''",
      'toUInt64(0)', 'toUInt32(0)', "''", 'estimate', 'priced_as',
    ].join(', '),
    clean: (ctx) => [
      "request_id != ''",
      `ts <= toDateTime64('${ctx.futureLimit.replace('T', ' ').replace('Z', '')}', 6, 'UTC')`,
      'ifNull(prompt_tokens >= 0, false)', 'ifNull(completion_tokens >= 0, false)',
      'spend_exact IS NOT NULL', 'spend_exact >= 0', 'spend_exact < 1000000000',
      'error_class_plain', "(error_code IS NULL OR match(error_code, '^[1-9][0-9]{2}$'))",
      'cache_read >= 0', 'cached >= 0', 'cache_write >= 0',
    ].join(' AND '),
    otherEvents: 'false',
  };
}

/** The error log has no index on "startTime": while it has none, each read scans it, so it is read this rarely. */
export const ERROR_LOG_INTERVAL_MS = 5 * 60_000;

export const litellm: SourceAdapter = {
  type: SOURCE,
  requiredTables: () => ['LiteLLM_SpendLogs', 'LiteLLM_ErrorLogs'],
  forbiddenColumns: { LiteLLM_SpendLogs: ['api_key', 'messages', 'response'], LiteLLM_ErrorLogs: ['request_kwargs'] },
  reads: {
    LiteLLM_SpendLogs: [
      'xmin',
      'request_id', 'call_type', 'spend', 'prompt_tokens', 'completion_tokens', 'startTime', 'endTime', 'completionStartTime', 'request_duration_ms',
      'model', 'model_group', 'custom_llm_provider', 'api_base', 'user', 'metadata', 'team_id', 'organization_id', 'end_user', 'session_id', 'status',
    ],
    LiteLLM_ErrorLogs: ['xmin', 'request_id', 'startTime', 'endTime', 'api_base', 'model_group', 'litellm_model_name', 'exception_type', 'status_code'],
  },
  build(source) {
    const names = new SourceNames(source);
    const common = readerSettings(source);
    const spend: IncrementalStream = {
      kind: 'incremental',
      table: 'LiteLLM_SpendLogs',
      spec: {
        id: `${source.name}/LiteLLM_SpendLogs`,
        table: names.table('LiteLLM_SpendLogs'),
        cursorColumn: names.required('startTime'),
        idColumn: names.required('request_id'),
        selectList: [
          'request_id', 'call_type', 'spend', 'prompt_tokens', 'completion_tokens', 'startTime', 'endTime',
          'completionStartTime', 'request_duration_ms', 'model', 'model_group', 'custom_llm_provider', 'api_base',
          'user', 'metadata', 'team_id', 'organization_id', 'end_user', 'session_id', 'status',
        ].map((c) => names.select(c)).join(', '),
        ...common,
      },
      rowId: (row) => String(row.request_id),
      map: mapSpendLog,
      bulk: spendBulkSpec(names),
      stored: { table: 'requests', eventKind: 'request', idColumn: 'request_id', timeColumn: 'started_at', source: SOURCE },
    };
    const errors: IncrementalStream = {
      kind: 'incremental',
      table: 'LiteLLM_ErrorLogs',
      spec: {
        id: `${source.name}/LiteLLM_ErrorLogs`,
        table: names.table('LiteLLM_ErrorLogs'),
        cursorColumn: names.required('startTime'),
        idColumn: names.required('request_id'),
        selectList: ['request_id', 'startTime', 'endTime', 'api_base', 'model_group', 'litellm_model_name', 'exception_type', 'status_code']
          .map((c) => names.select(c))
          .join(', '),
        ...common,
      },
      rowId: (row) => String(row.request_id),
      map: mapErrorLog,
      bulk: errorBulkSpec(names),
      stored: { table: 'activity_events', eventKind: 'activity', idColumn: ACTIVITY_SOURCE_ID, timeColumn: 'event_time', source: SOURCE, where: "event_type = 'llm_call_failed'" },
      unindexedIntervalMs: Math.max(source.pollInterval, ERROR_LOG_INTERVAL_MS),
    };
    return { streams: [spend, errors], snapshots: [] };
  },
};
