// Sidekick Forge: voice/text agents ("sidekicks") owned by clients, on the platform's real
// schema and topology (docs/sources.md has the long form).
//
// Topology. The platform database holds clients, tier_quotas, agent_usage, activity_log and
// livekit_events, plus the agents, conversations and transcripts of clients on the shared
// (adventurer) tier. Each dedicated (champion, paragon) client has a database of its own with
// its agents, conversations and transcripts: configured as clientDatabases, each read as a part
// of this source (parts()), every row labelled with that client.
//
// Tenant = the client's name. The real agents table has no client_id: in the platform
// database an agent belongs to the client its agent_usage rows are counted for.
//
// Quotas follow the platform's own rule (get_client_aggregated_usage, check_client_quota):
// per client and month, used = the sum over the client's agent_usage rows (deleted agents
// included), limit = the quota of the client's tier (NULL tier: adventurer; no tier row:
// 6000 / 1000 / 10000), 0 = unlimited. The per-row *_limit columns are stale copies, never read.
//
// Agent activity comes from transcripts (the application never touches conversations.updated_at).
// Never selected: the clients' provider keys and secrets, transcripts' embeddings.
import type { ActivityEvent, AgentSnapshot, CanonicalEvent, ConversationSnapshot, ConversationStats, MessageEvent, UsageResource, UsageSnapshot, VoiceSessions } from '../model/events.ts';
import { DERIVED_ACTIVITY_TYPES } from '../model/events.ts';
import type { BulkContext, BulkSpec, IncrementalStream, MapContext, NamedSource, SnapshotQuery, SourceAdapter } from './adapter.ts';
import { ACTIVITY_SOURCE_ID, SourceNames, clientDatabasePart, contentText, nonNegativeIntegerOrNull, nonNegativeOrNull, optionalInteger, optionalString, readerSettings, requiredTimestamp, toIso } from './adapter.ts';
import { RowRejected } from '../quality/row-quality.ts';
import { clickhouseString } from '../store/literal.ts';
import { ACTIVITY_TARGET, CONVERSATIONS_TARGET, activityMappingSql, jsonSafeSql } from '../store/bulk-load.ts';

const SOURCE = 'sidekick-forge' as const;

/** Tenant of rows no client can be found for (an agent of the platform database without usage rows). */
export const UNATTRIBUTED = 'unattributed';

/**
 * Agent status rule (docs/sources.md):
 *   offline: the agent is disabled;
 *   online:  a transcript row of one of its conversations was written in the last 5 minutes;
 *   idle:    enabled, no such row.
 */
export const AGENT_ONLINE_WINDOW_MINUTES = 5;
/** A LiveKit room started longer ago than this and never finished is not counted as active. */
const VOICE_SESSION_MAX_HOURS = 24;

/** The platform's defaults when a tier has no tier_quotas row (get_client_aggregated_usage). */
const RESOURCES: { resource: UsageResource; used: string; tierLimit: string | null; fallback: number }[] = [
  { resource: 'voice_seconds', used: 'voice_seconds_used', tierLimit: 'voice_seconds_per_month', fallback: 6000 },
  { resource: 'text_messages', used: 'text_messages_used', tierLimit: 'text_messages_per_month', fallback: 1000 },
  { resource: 'embedding_chunks', used: 'embedding_chunks_used', tierLimit: 'embedding_chunks_per_month', fallback: 10000 },
  { resource: 'llm_input_tokens', used: 'llm_input_tokens', tierLimit: null, fallback: 0 },
  { resource: 'llm_output_tokens', used: 'llm_output_tokens', tierLimit: null, fallback: 0 },
  { resource: 'llm_cached_input_tokens', used: 'llm_cached_input_tokens', tierLimit: null, fallback: 0 },
];

const PLATFORM_TABLES = ['clients', 'tier_quotas', 'agent_usage', 'agents', 'conversations', 'conversation_transcripts', 'activity_log', 'livekit_events'] as const;
const CLIENT_TABLES = ['agents', 'conversations', 'conversation_transcripts'] as const;

/**
 * SQL for the tenant of rows keyed by an agent id, in the platform database: the client the
 * agent's usage is counted for (agent_usage is small; every row of one agent has the same
 * client), else the client the activity log records for the agent (sidekick_created, …; on its
 * agent_id index). In a client's own database every row is that client's: no SQL needed.
 */
function tenantSql(source: NamedSource, names: SourceNames, agentIdSql: string): string {
  if (source.clientOf) return 'NULL::text';
  const clientId = names.required('client_id');
  const owner = `coalesce((SELECT u.${clientId} FROM ${names.table('agent_usage')} u WHERE u.${names.required('agent_id')} = ${agentIdSql} LIMIT 1),
    (SELECT l.${clientId} FROM ${names.table('activity_log')} l WHERE l.${names.required('agent_id')} = ${agentIdSql} AND l.${clientId} IS NOT NULL LIMIT 1))`;
  return clientNameSql(names, owner);
}

/**
 * SQL for the name of the client with id `idSql`: a uuid (on the primary key), or with
 * `text` an id held as text in JSON, which may not be a uuid at all (compared as text).
 */
function clientNameSql(names: SourceNames, idSql: string, options: { text?: boolean } = {}): string {
  const id = `c.${names.required('id')}${options.text ? '::text' : ''}`;
  return `(SELECT c.${names.required('name')} FROM ${names.table('clients')} c WHERE ${id} = ${idSql})`;
}

/** SQL for the slug of the agent with id `idSql`, in the same database (as clientNameSql). */
function agentSlugSql(names: SourceNames, idSql: string, options: { text?: boolean } = {}): string {
  const id = `a.${names.required('id')}${options.text ? '::text' : ''}`;
  return `(SELECT a.${names.required('slug')} FROM ${names.table('agents')} a WHERE ${id} = ${idSql})`;
}

function tenantOf(source: NamedSource, row: Record<string, unknown>): string {
  return source.clientOf?.tenant ?? optionalString(row.tenant) ?? UNATTRIBUTED;
}

/**
 * Where this database's rows are in the event store, beside those of the source's other
 * databases (same `source` column): a client database holds one tenant's rows; the platform
 * database every other tenant's.
 */
function ownTenants(source: NamedSource): string | undefined {
  if (source.clientOf) return `tenant = ${clickhouseString(source.clientOf.tenant)}`;
  const parts = source.partTenants ?? [];
  return parts.length === 0 ? undefined : `tenant NOT IN (${parts.map(clickhouseString).join(', ')})`;
}

/**
 * The bulk backfill of an append-only table of this source (activity_log, livekit_events,
 * conversations). The row path names a row's client and agent with a subquery per row; the
 * bulk path copies the ids and looks them up in ClickHouse in the same three small tables, read
 * once (lookups): a client's name by id, an agent's slug by id, and in the platform database
 * an agent's owner as tenantSql() finds it. Transcripts stay row by row: their content is
 * redacted in JavaScript, and they are updated in place.
 */
function bulkLookups(source: NamedSource, names: SourceNames, tenantBy: 'clients' | 'owners'): Record<string, string> {
  const agents = `SELECT a.${names.required('id')}::text AS key, a.${names.required('slug')} AS value FROM ${names.table('agents')} a`;
  if (source.clientOf) return { agents };
  if (tenantBy === 'clients') return { agents, clients: `SELECT c.${names.required('id')}::text AS key, c.${names.required('name')} AS value FROM ${names.table('clients')} c` };
  const agentId = names.required('agent_id');
  return {
    agents,
    // tenantSql(): the client of the agent's usage rows, else of its activity.
    // tenantSql() once per agent of the platform (its agents and those its usage names); a
    // conversation of another agent goes through map().
    owners: `SELECT k.agent::text AS key, coalesce(${tenantSql(source, names, 'k.agent')}, '') AS value
      FROM (SELECT a.${names.required('id')} AS agent FROM ${names.table('agents')} a UNION SELECT u.${agentId} FROM ${names.table('agent_usage')} u) k`,
  };
}

/** The copied ids a bulk row's tenant (absent: by its agent) and agent are looked up by (text, NULL where empty). */
function bulkKeys(tenantKey: string | null, agentKey: string): BulkSpec['columns'] {
  return [
    ...(tenantKey === null ? [] : [{ name: 'tenant_key', sql: `nullif(${tenantKey}, '')`, type: 'Nullable(String)' }]),
    { name: 'agent_key', sql: `nullif(${agentKey}, '')`, type: 'Nullable(String)' },
  ];
}

/**
 * ClickHouse tenant of a bulk row, as tenantOf() gives it: the part's client, else the client
 * name `lookup` finds for `key` (a client's id, or an agent's for its owner), else unattributed.
 */
function bulkTenant(source: NamedSource, ctx: BulkContext, lookup: 'clients' | 'owners', key: string): string {
  if (source.clientOf) return clickhouseString(source.clientOf.tenant);
  return `ifNull(nullIf(${ctx.lookup(lookup, key)}, ''), ${clickhouseString(UNATTRIBUTED)})`;
}

/** ClickHouse agent of a bulk row: its slug, else its id, else ''. */
function bulkAgent(ctx: BulkContext): string {
  return `coalesce(nullIf(${ctx.lookup('agents', 'agent_key')}, ''), agent_key, '')`;
}

/** A clean bulk row: its time is not in the future (requiredTimestamp), its text is JSON-safe. */
function bulkClean(ctx: BulkContext, time: string, texts: readonly string[]): string {
  return [`${time} IS NOT NULL`, `${time} <= toDateTime64('${ctx.futureLimit.replace('T', ' ').replace('Z', '')}', 6, 'UTC')`, ...texts.map(jsonSafeSql)].join(' AND ');
}

/** Nullable text of a column (NULL where absent or ''), for a bulk copy. */
function bulkText(names: SourceNames, reference: string): string {
  const column = names.column(reference);
  return column === null ? 'NULL::text' : `nullif(t.${column}::text, '')`;
}

const TIME_COLUMN = (names: SourceNames) => ({ name: 'created_at', sql: `t.${names.required('created_at')}`, type: "Nullable(DateTime64(6, 'UTC'))" });

function activityBulkSpec(source: NamedSource, names: SourceNames): BulkSpec {
  const agentId = `t.${names.required('agent_id')}`;
  const texts = ['action', 'status', 'resource_name', 'resource_id'];
  return {
    columns: [
      { name: 'id', sql: `t.${names.required('id')}::text`, type: 'String' },
      { name: 'activity_type', sql: bulkText(names, 'activity_type'), type: 'Nullable(String)' },
      { name: 'resource_type', sql: bulkText(names, 'resource_type'), type: 'Nullable(String)' },
      ...texts.map((name) => ({ name, sql: bulkText(names, name), type: 'Nullable(String)' })),
      TIME_COLUMN(names),
      ...bulkKeys(`t.${names.required('client_id')}::text`, `${agentId}::text`),
    ],
    target: ACTIVITY_TARGET,
    rowId: 'id',
    lookups: bulkLookups(source, names, 'clients'),
    derived: () => '',
    mapping: (ctx) => activityMappingSql({
      tenant: bulkTenant(source, ctx, 'clients', 'tenant_key'), source: clickhouseString(SOURCE), id: 'id', type: 'assumeNotNull(activity_type)', time: 'assumeNotNull(created_at)',
      agent: bulkAgent(ctx), resource: "ifNull(resource_type, '')", action: "ifNull(action, '')", status: "ifNull(status, 'success')",
      resourceName: 'resource_name', duration: 'NULL', details: [['resource_id', 'resource_id']],
    }),
    clean: (ctx) => `activity_type IS NOT NULL AND ${bulkClean(ctx, 'created_at', texts)}`,
    otherEvents: 'false',
  };
}

function livekitBulkSpec(source: NamedSource, names: SourceNames): BulkSpec {
  const metadata = `t.${names.required('metadata')}`;
  const duration = names.column('duration') === null ? 'NULL::float8' : `CASE WHEN t.${names.column('duration')} >= 0 THEN t.${names.column('duration')}::float8 END`;
  return {
    columns: [
      { name: 'id', sql: `t.${names.required('id')}::text`, type: 'String' },
      { name: 'finished', sql: `t.${names.required('event_type')} = 'room_finished'`, type: 'Bool' },
      { name: 'room_name', sql: bulkText(names, 'room_name'), type: 'Nullable(String)' },
      { name: 'duration', sql: duration, type: 'Nullable(Float64)' },
      TIME_COLUMN(names),
      ...bulkKeys(`${metadata}->>'client_id'`, `${metadata}->>'agent_id'`),
    ],
    target: ACTIVITY_TARGET,
    rowId: 'id',
    lookups: bulkLookups(source, names, 'clients'),
    derived: () => '',
    mapping: (ctx) => activityMappingSql({
      tenant: bulkTenant(source, ctx, 'clients', 'tenant_key'), source: clickhouseString(SOURCE), id: 'id', type: "if(finished, 'voice_session_finished', 'voice_session_started')",
      time: 'assumeNotNull(created_at)', agent: bulkAgent(ctx), resource: "'voice_session'", action: "if(finished, 'end', 'start')", status: "'success'",
      resourceName: 'room_name', duration: 'if(finished, duration, NULL)', details: [],
    }),
    clean: (ctx) => bulkClean(ctx, 'created_at', ['room_name']),
    otherEvents: 'false',
  };
}

function conversationBulkSpec(source: NamedSource, names: SourceNames): BulkSpec {
  const agentId = `t.${names.required('agent_id')}`;
  return {
    columns: [
      { name: 'id', sql: `t.${names.required('id')}::text`, type: 'String' },
      { name: 'user_id', sql: bulkText(names, 'user_id'), type: 'Nullable(String)' },
      { name: 'channel', sql: bulkText(names, 'channel'), type: 'Nullable(String)' },
      TIME_COLUMN(names),
      ...bulkKeys(null, `${agentId}::text`),
    ],
    target: CONVERSATIONS_TARGET,
    rowId: 'id',
    lookups: bulkLookups(source, names, 'owners'),
    derived: () => '',
    mapping: (ctx) => {
      const time = "toDateTime64(assumeNotNull(created_at), 3, 'UTC')";
      return [bulkTenant(source, ctx, 'owners', 'agent_key'), clickhouseString(SOURCE), 'id', bulkAgent(ctx), "ifNull(user_id, '')", "ifNull(channel, 'unknown')", "'started'", time, time, 'NULL', time].join(', ');
    },
    clean: (ctx) => `${bulkClean(ctx, 'created_at', ['channel'])}${source.clientOf ? '' : ` AND (agent_key IS NULL OR ${ctx.lookupKnown('owners', 'agent_key')})`}`,
    otherEvents: 'false',
  };
}

/** LiveKit's voice sessions, stored as activities beside activity_log's. */
const VOICE_SESSION_TYPES = ['voice_session_started', 'voice_session_finished'];

/** Name of a stream or snapshot of this source: "<source>/<table>". */
function id(source: NamedSource, table: string): string {
  return `${source.name}/${table}`;
}

/**
 * Transcripts: inserted per utterance, a streamed voice reply updated in place as it grows.
 * The real table has no index on created_at; while it has none, each poll scans it, so it is
 * polled on the snapshot interval (docs/sources.md, "Tables without an index").
 */
function transcriptStream(source: NamedSource, names: SourceNames): IncrementalStream {
  const agentId = `t.${names.required('agent_id')}`;
  const selectList = [
    names.expr('id', '$::text', 'id'),
    names.expr('conversation_id', '$::text', 'conversation_id'),
    names.expr('agent_id', '$::text', 'agent_id'),
    names.expr('user_id', '$::text', 'user_id'),
    names.select('role'),
    names.select('content'),
    names.select('transcript'),
    names.select('sequence'),
    names.select('source'),
    names.select('created_at'),
    `${agentSlugSql(names, agentId)} AS agent_slug`,
    `${tenantSql(source, names, agentId)} AS tenant`,
  ].join(', ');
  return {
    kind: 'incremental',
    table: 'conversation_transcripts',
    unindexedIntervalMs: Math.max(source.pollInterval, source.snapshotInterval),
    spec: {
      id: id(source, 'conversation_transcripts'),
      table: names.table('conversation_transcripts'),
      cursorColumn: names.required('created_at'),
      idColumn: names.required('id'),
      selectList,
      ...readerSettings(source),
    },
    rowId: (row) => String(row.id),
    stored: { table: 'messages', eventKind: 'message', idColumn: 'message_id', timeColumn: 'created_at', source: SOURCE, where: ownTenants(source) },
    map(row, ctx): CanonicalEvent[] {
      const messageId = optionalString(row.id);
      const conversationId = optionalString(row.conversation_id);
      if (messageId === null || conversationId === null) throw new RowRejected('missing_field', 'id or conversation_id is missing');
      const event: MessageEvent = {
        kind: 'message',
        source: SOURCE,
        tenant: tenantOf(source, row),
        messageId,
        conversationId,
        role: optionalString(row.role) ?? 'unknown',
        content: contentText(row.content ?? row.transcript, ctx),
        sequence: optionalInteger(row.sequence, { min: -2147483648, max: 2147483647 }),
        channel: optionalString(row.source),
        agent: optionalString(row.agent_slug) ?? optionalString(row.agent_id),
        user: optionalString(row.user_id),
        requestId: null,
        createdAt: requiredTimestamp(row.created_at, 'created_at', ctx),
      };
      return [event];
    },
  };
}

/**
 * Conversations are inserted once, at their start, and never changed: read incrementally. The
 * real table has no index on created_at; while it has none, each read scans it, so it is read
 * on the snapshot interval.
 */
function conversationStream(source: NamedSource, names: SourceNames): IncrementalStream {
  const agentId = `t.${names.required('agent_id')}`;
  return {
    kind: 'incremental',
    table: 'conversations',
    unindexedIntervalMs: Math.max(source.pollInterval, source.snapshotInterval),
    spec: {
      id: id(source, 'conversations'),
      table: names.table('conversations'),
      cursorColumn: names.required('created_at'),
      idColumn: names.required('id'),
      selectList: [
        names.expr('id', '$::text', 'id'),
        names.expr('agent_id', '$::text', 'agent_id'),
        names.expr('user_id', '$::text', 'user_id'),
        names.select('channel'),
        names.select('created_at'),
        `${agentSlugSql(names, agentId)} AS agent_slug`,
        `${tenantSql(source, names, agentId)} AS tenant`,
      ].join(', '),
      ...readerSettings(source),
    },
    rowId: (row) => String(row.id),
    bulk: conversationBulkSpec(source, names),
    stored: { table: 'conversations', eventKind: 'conversation', idColumn: 'conversation_id', timeColumn: 'started_at', source: SOURCE, where: ownTenants(source) },
    map(row, ctx): CanonicalEvent[] {
      const conversationId = optionalString(row.id);
      if (conversationId === null) throw new RowRejected('missing_field', 'conversations.id is missing');
      const startedAt = requiredTimestamp(row.created_at, 'created_at', ctx);
      const conversation: ConversationSnapshot = {
        kind: 'conversation',
        source: SOURCE,
        tenant: tenantOf(source, row),
        conversationId,
        agent: optionalString(row.agent_slug) ?? optionalString(row.agent_id),
        user: optionalString(row.user_id),
        channel: optionalString(row.channel) ?? 'unknown',
        // The real schema has no status: a conversation is recorded when it starts.
        status: 'started',
        startedAt,
        lastActivityAt: startedAt,
        durationSeconds: null,
        observedAt: startedAt,
      };
      return [conversation];
    },
  };
}

/** Platform activity (agent configuration, documents, abilities, conversations): append-only, indexed on created_at. */
function activityStream(source: NamedSource, names: SourceNames): IncrementalStream {
  return {
    kind: 'incremental',
    table: 'activity_log',
    spec: {
      id: id(source, 'activity_log'),
      table: names.table('activity_log'),
      cursorColumn: names.required('created_at'),
      idColumn: names.required('id'),
      selectList: [
        names.expr('id', '$::text', 'id'),
        names.select('activity_type'),
        names.select('action'),
        names.expr('agent_id', '$::text', 'agent_id'),
        names.select('resource_type'),
        names.select('resource_id'),
        names.select('resource_name'),
        names.select('status'),
        names.select('created_at'),
        `${clientNameSql(names, `t.${names.required('client_id')}`)} AS tenant`,
        `${agentSlugSql(names, `t.${names.required('agent_id')}`)} AS agent_slug`,
      ].join(', '),
      ...readerSettings(source),
    },
    rowId: (row) => String(row.id),
    bulk: activityBulkSpec(source, names),
    stored: {
      table: 'activity_events', eventKind: 'activity', idColumn: ACTIVITY_SOURCE_ID, timeColumn: 'event_time', source: SOURCE,
      // An activity_log row may carry a type tokenwatch also derives (conversation_started,
      // …): its details, unlike the derived events', start with its action.
      where: `event_type NOT IN (${VOICE_SESSION_TYPES.map(clickhouseString).join(', ')})
        AND (event_type NOT IN (${DERIVED_ACTIVITY_TYPES.map(clickhouseString).join(', ')}) OR startsWith(details, '{"action":'))`,
    },
    map(row, ctx): CanonicalEvent[] {
      const activityId = optionalString(row.id);
      const activityType = optionalString(row.activity_type);
      if (activityId === null || activityType === null) throw new RowRejected('missing_field', 'id or activity_type is missing');
      const event: ActivityEvent = {
        kind: 'activity',
        source: SOURCE,
        tenant: tenantOf(source, row),
        activityId,
        activityType,
        action: optionalString(row.action) ?? '',
        status: optionalString(row.status) ?? 'success',
        agent: optionalString(row.agent_slug) ?? optionalString(row.agent_id),
        resourceType: optionalString(row.resource_type),
        resourceName: optionalString(row.resource_name),
        durationSeconds: null,
        details: { resource_id: optionalString(row.resource_id) },
        occurredAt: requiredTimestamp(row.created_at, 'created_at', ctx),
      };
      return [event];
    },
  };
}

/** LiveKit webhooks: a voice session starts (room_started) and finishes with its duration (room_finished). */
function livekitStream(source: NamedSource, names: SourceNames): IncrementalStream {
  const metadata = `t.${names.required('metadata')}`;
  return {
    kind: 'incremental',
    table: 'livekit_events',
    spec: {
      id: id(source, 'livekit_events'),
      table: names.table('livekit_events'),
      cursorColumn: names.required('created_at'),
      idColumn: names.required('id'),
      selectList: [
        names.expr('id', '$::text', 'id'),
        names.select('event_type'),
        names.select('room_name'),
        names.select('duration'),
        names.select('created_at'),
        `${metadata}->>'agent_id' AS agent_id`,
        `${clientNameSql(names, `${metadata}->>'client_id'`, { text: true })} AS tenant`,
        `${agentSlugSql(names, `${metadata}->>'agent_id'`, { text: true })} AS agent_slug`,
      ].join(', '),
      filter: () => `t.${names.required('event_type')} IN ('room_started', 'room_finished')`,
      ...readerSettings(source),
    },
    rowId: (row) => String(row.id),
    bulk: livekitBulkSpec(source, names),
    stored: {
      table: 'activity_events', eventKind: 'activity', idColumn: ACTIVITY_SOURCE_ID, timeColumn: 'event_time', source: SOURCE,
      where: "event_type IN ('voice_session_started', 'voice_session_finished')",
    },
    map(row, ctx): CanonicalEvent[] {
      const activityId = optionalString(row.id);
      if (activityId === null) throw new RowRejected('missing_field', 'id is missing');
      const finished = row.event_type === 'room_finished';
      const event: ActivityEvent = {
        kind: 'activity',
        source: SOURCE,
        tenant: tenantOf(source, row),
        activityId,
        activityType: finished ? 'voice_session_finished' : 'voice_session_started',
        action: finished ? 'end' : 'start',
        status: 'success',
        agent: optionalString(row.agent_slug) ?? optionalString(row.agent_id),
        resourceType: 'voice_session',
        resourceName: optionalString(row.room_name),
        durationSeconds: finished ? nonNegativeOrNull(row.duration) : null,
        details: {},
        occurredAt: requiredTimestamp(row.created_at, 'created_at', ctx),
      };
      return [event];
    },
  };
}

/** Voice sessions in progress: rooms started in the last 24 hours and not finished since (on the room_name index). */
function voiceSessionSnapshot(source: NamedSource, names: SourceNames): SnapshotQuery {
  const events = names.table('livekit_events');
  const type = names.required('event_type');
  const room = names.required('room_name');
  const created = names.required('created_at');
  const sql = `SELECT ${clientNameSql(names, `s.${names.required('metadata')}->>'client_id'`, { text: true })} AS tenant,
      count(*)::bigint AS active
    FROM ${events} s
    WHERE s.${type} = 'room_started' AND s.${created} > now() - interval '${VOICE_SESSION_MAX_HOURS} hours'
      AND NOT EXISTS (SELECT 1 FROM ${events} f WHERE f.${room} = s.${room} AND f.${type} = 'room_finished' AND f.${created} >= s.${created})
    GROUP BY 1`;
  return {
    kind: 'snapshot',
    id: id(source, 'voice_sessions'),
    table: 'livekit_events',
    sql,
    params: [],
    mapRow(row, _ctx, observedAt): CanonicalEvent[] {
      const sessions: VoiceSessions = { kind: 'voice_sessions', source: SOURCE, tenant: tenantOf(source, row), active: nonNegativeIntegerOrNull(row.active) ?? 0, observedAt };
      return [sessions];
    },
  };
}

/**
 * Every client's usage of the current month against its tier's quota, one row per client and
 * agent (a client without usage rows: one row with no agent, so its quota is still shown).
 */
function usageSnapshot(source: NamedSource, names: SourceNames): SnapshotQuery {
  const period = `date_trunc('month', current_date)::date`;
  const used = RESOURCES.map((r) => `u.${names.required(r.used)} AS ${r.used}`);
  const limits = RESOURCES.filter((r) => r.tierLimit !== null).map((r) => `coalesce(q.${names.required(r.tierLimit!)}, ${r.fallback}) AS ${r.tierLimit}`);
  const sql = `SELECT c.${names.required('id')}::text AS client_id, c.${names.required('name')} AS tenant, u.${names.required('agent_id')}::text AS agent_id,
      a.${names.required('slug')} AS agent_slug, ${period}::text AS period_start, ${[...used, ...limits].join(', ')}
    FROM ${names.table('clients')} c
    LEFT JOIN ${names.table('tier_quotas')} q ON q.${names.required('tier')} = coalesce(c.${names.required('tier')}::text, 'adventurer')
    LEFT JOIN ${names.table('agent_usage')} u ON u.${names.required('client_id')} = c.${names.required('id')} AND u.${names.required('period_start')} = ${period}
    LEFT JOIN ${names.table('agents')} a ON a.${names.required('id')} = u.${names.required('agent_id')}`;
  return {
    kind: 'snapshot',
    id: id(source, 'agent_usage'),
    table: 'agent_usage',
    sql,
    params: [],
    mapRow(row, _ctx: MapContext, observedAt): CanonicalEvent[] {
      const client = tenantOf(source, row);
      const periodStart = optionalString(row.period_start);
      if (periodStart === null) throw new RowRejected('missing_field', 'period_start is missing');
      // '' = no agent: the client has no usage row this month (its total is 0).
      const agent = optionalString(row.agent_slug) ?? optionalString(row.agent_id) ?? '';
      return RESOURCES.map((r): UsageSnapshot => ({
        kind: 'usage',
        source: SOURCE,
        tenant: client,
        client,
        agent,
        resource: r.resource,
        used: nonNegativeOrNull(row[r.used]) ?? 0,
        limit: r.tierLimit === null ? 0 : (nonNegativeOrNull(row[r.tierLimit]) ?? r.fallback),
        periodStart,
        observedAt,
      }));
    },
  };
}

/** Agents of this database with their status, from the transcripts of the last 5 minutes. */
function agentSnapshot(source: NamedSource, names: SourceNames): SnapshotQuery {
  const agentId = `a.${names.required('id')}`;
  const created = names.required('created_at');
  const sql = `WITH recent AS (
      SELECT t.${names.required('agent_id')} AS agent_id, count(DISTINCT t.${names.required('conversation_id')}) AS active_conversations, max(t.${created}) AS last_activity
      FROM ${names.table('conversation_transcripts')} t
      WHERE t.${created} > now() - interval '${AGENT_ONLINE_WINDOW_MINUTES} minutes' GROUP BY 1),
    started AS (SELECT cv.${names.required('agent_id')} AS agent_id, max(cv.${created}) AS last_start FROM ${names.table('conversations')} cv GROUP BY 1)
    SELECT ${agentId}::text AS agent_id, a.${names.required('slug')} AS agent_slug, a.${names.required('enabled')} AS enabled, a.${names.required('model')} AS model,
      a.${created} AS agent_created_at, a.${names.required('updated_at')} AS agent_updated_at, ${tenantSql(source, names, agentId)} AS tenant,
      coalesce(r.active_conversations, 0) AS active_conversations, greatest(r.last_activity, s.last_start) AS last_activity
    FROM ${names.table('agents')} a
    LEFT JOIN recent r ON r.agent_id = ${agentId}
    LEFT JOIN started s ON s.agent_id = ${agentId}`;
  return {
    kind: 'snapshot',
    id: id(source, 'agents'),
    table: 'agents',
    sql,
    params: [],
    mapRow(row, _ctx, observedAt): CanonicalEvent[] {
      const agentId = optionalString(row.agent_id);
      if (agentId === null) throw new RowRejected('missing_field', 'agents.id is missing');
      const enabled = row.enabled !== false;
      const activeConversations = nonNegativeIntegerOrNull(row.active_conversations) ?? 0;
      const created = toIso(row.agent_created_at);
      const updated = toIso(row.agent_updated_at);
      const agent: AgentSnapshot = {
        kind: 'agent',
        source: SOURCE,
        tenant: tenantOf(source, row),
        agentId,
        agent: optionalString(row.agent_slug) ?? agentId,
        enabled,
        status: !enabled ? 'offline' : activeConversations > 0 ? 'online' : 'idle',
        activeConversations,
        lastActivityAt: toIso(row.last_activity),
        model: optionalString(row.model),
        configChangedAt: updated !== null && updated !== created ? updated : null,
        observedAt,
      };
      return [agent];
    },
  };
}

/**
 * Conversations per tenant and channel, over the whole table (the real schema has no status):
 * counted per agent first, so the tenant is looked up once per agent, not once per
 * conversation (100k conversations: 850 ms before, one scan now).
 */
function conversationStats(source: NamedSource, names: SourceNames): SnapshotQuery {
  const sql = `SELECT tenant, channel, sum(n)::bigint AS conversations FROM (
      SELECT ${tenantSql(source, names, 'g.agent')} AS tenant, g.channel, g.n FROM (
        SELECT cv.${names.required('agent_id')} AS agent, coalesce(cv.${names.required('channel')}, 'unknown') AS channel, count(*) AS n
        FROM ${names.table('conversations')} cv GROUP BY 1, 2) g) x
    GROUP BY 1, 2`;
  return {
    kind: 'snapshot',
    id: id(source, 'conversation_stats'),
    table: 'conversations',
    sql,
    params: [],
    mapRow(row, _ctx, observedAt): CanonicalEvent[] {
      const stats: ConversationStats = {
        kind: 'conversation_stats', source: SOURCE, tenant: tenantOf(source, row), channel: optionalString(row.channel) ?? 'unknown',
        status: 'all', conversations: nonNegativeIntegerOrNull(row.conversations) ?? 0, observedAt,
      };
      return [stats];
    },
  };
}

export const sidekickForge: SourceAdapter = {
  type: SOURCE,
  requiredTables: (source) => (source.clientOf ? CLIENT_TABLES : PLATFORM_TABLES),
  reads: {
    conversation_transcripts: ['xmin', 'id', 'conversation_id', 'agent_id', 'user_id', 'role', 'content', 'transcript', 'sequence', 'source', 'created_at'],
    conversations: ['xmin', 'id', 'agent_id', 'user_id', 'channel', 'created_at'],
    agents: ['id', 'slug', 'enabled', 'model', 'created_at', 'updated_at'],
    clients: ['id', 'name', 'tier'],
    agent_usage: ['client_id', 'agent_id', 'period_start', ...RESOURCES.map((r) => r.used)],
    tier_quotas: ['tier', 'voice_seconds_per_month', 'text_messages_per_month', 'embedding_chunks_per_month'],
    activity_log: ['xmin', 'id', 'activity_type', 'action', 'client_id', 'agent_id', 'resource_type', 'resource_id', 'resource_name', 'status', 'created_at'],
    livekit_events: ['xmin', 'id', 'event_type', 'room_name', 'duration', 'metadata', 'created_at'],
  },
  forbiddenColumns: {
    clients: [
      'supabase_service_role_key', 'supabase_anon_key', 'livekit_url', 'livekit_api_key', 'livekit_api_secret', 'openai_api_key', 'groq_api_key',
      'deepgram_api_key', 'elevenlabs_api_key', 'cartesia_api_key', 'anthropic_api_key', 'stripe_customer_id', 'stripe_subscription_id', 'owner_email',
    ],
    conversation_transcripts: ['embeddings'],
  },
  async parts(source, db) {
    if (source.clientDatabases.length === 0) return [];
    const names = new SourceNames(source);
    const ids = source.clientDatabases.map((c) => c.client);
    const { rows } = await db.query<{ id: string; name: string }>(
      `SELECT c.${names.required('id')}::text AS id, c.${names.required('name')} AS name FROM ${names.table('clients')} c WHERE c.${names.required('id')} = ANY($1::uuid[])`,
      [ids],
    );
    const found = new Map(rows.map((r) => [r.id, r.name]));
    const unknown = ids.filter((client) => !found.has(client));
    if (unknown.length > 0) throw new Error(`source ${source.name}: clientDatabases name client${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}, not in the platform's clients table`);
    return source.clientDatabases.map((db) => clientDatabasePart(source, db, found.get(db.client)!));
  },
  build(source) {
    const names = new SourceNames(source);
    const own = { streams: [transcriptStream(source, names), conversationStream(source, names)], snapshots: [agentSnapshot(source, names), conversationStats(source, names)] };
    if (source.clientOf) return own;
    return {
      streams: [...own.streams, activityStream(source, names), livekitStream(source, names)],
      snapshots: [...own.snapshots, usageSnapshot(source, names), voiceSessionSnapshot(source, names)],
    };
  },
};
