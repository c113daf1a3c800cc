// Sidekick Forge: voice/text agents ("sidekicks") owned by clients.
// Tenant = the client (its slug, else its name, else its id).
//  - conversation_transcripts is append-only: read incrementally by created_at.
//  - agent_usage, conversations and agents change in place: re-read on snapshotInterval.
// Never selected: clients' provider keys and LiveKit url/key/secret, transcripts' embeddings.
import type { AgentSnapshot, CanonicalEvent, ConversationSnapshot, ConversationStats, MessageEvent, UsageResource, UsageSnapshot } from '../model/events.ts';
import type { IncrementalStream, MapContext, SnapshotQuery, SourceAdapter } from './adapter.ts';
import { SourceNames, contentText, nonNegativeIntegerOrNull, nonNegativeOrNull, optionalInteger, optionalString, readerSettings, requiredTimestamp, toIso } from './adapter.ts';
import { RowRejected } from '../quality/row-quality.ts';

const SOURCE = 'sidekick-forge' as const;

/**
 * Agent status rule (documented in the README):
 *   offline: the agent is disabled;
 *   online:  it has at least one active conversation with activity in the last 5 minutes;
 *   idle:    enabled, no such conversation.
 */
export const AGENT_ONLINE_WINDOW_MINUTES = 5;
/** Conversations changed within this window are re-emitted on every snapshot poll. */
const CONVERSATION_LOOKBACK_HOURS = 24;

const RESOURCES: { resource: UsageResource; used: string; limit: string | null; tierLimit: string | null }[] = [
  { resource: 'voice_seconds', used: 'voice_seconds_used', limit: 'voice_seconds_limit', tierLimit: 'voice_seconds_per_month' },
  { resource: 'text_messages', used: 'text_messages_used', limit: 'text_messages_limit', tierLimit: 'text_messages_per_month' },
  { resource: 'embedding_chunks', used: 'embedding_chunks_used', limit: 'embedding_chunks_limit', tierLimit: 'embedding_chunks_per_month' },
  { resource: 'llm_input_tokens', used: 'llm_input_tokens', limit: null, tierLimit: null },
  { resource: 'llm_output_tokens', used: 'llm_output_tokens', limit: null, tierLimit: null },
  { resource: 'llm_cached_input_tokens', used: 'llm_cached_input_tokens', limit: null, tierLimit: null },
];

function tenantOf(row: Record<string, unknown>): string {
  return optionalString(row.client_slug) ?? optionalString(row.client_name) ?? optionalString(row.client_id) ?? 'default';
}

/** `LEFT JOIN agents a … LEFT JOIN clients c` giving the tenant columns for an agent id expression. */
function tenantJoin(names: SourceNames, agentIdExpr: string): { columns: string; joins: string } {
  const clientId = names.column('client_id');
  return {
    columns: [
      names.select('slug', 'agent_slug', 'a'),
      clientId === null ? 'NULL AS client_id' : `c.${names.required('id')}::text AS client_id`,
      clientId === null ? 'NULL AS client_slug' : names.select('slug', 'client_slug', 'c'),
      clientId === null ? 'NULL AS client_name' : names.select('name', 'client_name', 'c'),
    ].join(', '),
    joins:
      `LEFT JOIN ${names.table('agents')} a ON a.${names.required('id')} = ${agentIdExpr}` +
      (clientId === null ? '' : ` LEFT JOIN ${names.table('clients')} c ON c.${names.required('id')} = a.${clientId}`),
  };
}

function transcriptStream(source: Parameters<SourceAdapter['build']>[0], names: SourceNames): IncrementalStream {
  // The select list may only use alias t, so the tenant comes from correlated subqueries on
  // the small agents and clients tables (primary-key lookups).
  const agentId = `t.${names.required('agent_id')}`;
  const agents = names.table('agents');
  const clients = names.table('clients');
  const id = names.required('id');
  const clientId = names.column('client_id');
  const clientLookup = (column: string) =>
    clientId === null
      ? 'NULL'
      : `(SELECT c.${names.required(column)}::text FROM ${agents} a JOIN ${clients} c ON c.${id} = a.${clientId} WHERE a.${id} = ${agentId})`;
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
    `(SELECT a.${names.required('slug')} FROM ${agents} a WHERE a.${id} = ${agentId}) AS agent_slug`,
    `${clientLookup('id')} AS client_id`,
    `${clientLookup('slug')} AS client_slug`,
    `${clientLookup('name')} AS client_name`,
  ].join(', ');
  return {
    kind: 'incremental',
    table: 'conversation_transcripts',
    spec: {
      id: `${source.name}/conversation_transcripts`,
      table: names.table('conversation_transcripts'),
      cursorColumn: names.required('created_at'),
      idColumn: id,
      selectList,
      ...readerSettings(source),
    },
    rowId: (row) => String(row.id),
    map(row, ctx): CanonicalEvent[] {
      const messageId = optionalString(row.id);
      const conversationId = optionalString(row.conversation_id);
      if (messageId === null || conversationId === null) throw new RowRejected('missing_field', 'id or conversation_id is missing');
      const event: MessageEvent = {
        kind: 'message',
        source: SOURCE,
        tenant: tenantOf(row),
        messageId,
        conversationId,
        role: optionalString(row.role) ?? 'unknown',
        content: contentText(row.content ?? row.transcript, ctx),
        sequence: optionalInteger(row.sequence),
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

function usageSnapshot(source: Parameters<SourceAdapter['build']>[0], names: SourceNames): SnapshotQuery {
  const join = tenantJoin(names, `u.${names.required('agent_id')}`);
  const usedColumns = RESOURCES.map((r) => names.select(r.used, r.used, 'u'));
  const limitColumns = RESOURCES.filter((r) => r.limit !== null).map((r) => names.select(r.limit!, r.limit!, 'u'));
  const tierColumns = RESOURCES.filter((r) => r.tierLimit !== null).map((r) => names.select(r.tierLimit!, r.tierLimit!, 'q'));
  const sql = `SELECT u.${names.required('client_id')}::text AS usage_client_id, u.${names.required('agent_id')}::text AS agent_id,
      u.${names.required('period_start')}::text AS period_start, ${join.columns},
      ${[...usedColumns, ...limitColumns, ...tierColumns].join(', ')}
    FROM ${names.table('agent_usage')} u ${join.joins}
    LEFT JOIN ${names.table('tier_quotas')} q ON q.${names.required('tier')} = ${names.column('client_id') === null ? 'NULL' : `c.${names.required('tier')}`}::text
    WHERE u.${names.required('period_start')} = date_trunc('month', now())::date`;
  return {
    kind: 'snapshot',
    id: `${source.name}/agent_usage`,
    table: 'agent_usage',
    sql,
    params: [],
    mapRow(row, _ctx: MapContext, observedAt): CanonicalEvent[] {
      const tenant = optionalString(row.client_slug) ?? optionalString(row.client_name) ?? optionalString(row.usage_client_id) ?? 'default';
      const agent = optionalString(row.agent_slug) ?? optionalString(row.agent_id);
      if (agent === null) throw new RowRejected('missing_field', 'agent_id is missing');
      const periodStart = optionalString(row.period_start);
      if (periodStart === null) throw new RowRejected('missing_field', 'period_start is missing');
      return RESOURCES.map((r): UsageSnapshot => {
        // A row's own limit wins; 0 or NULL there falls back to the client's tier quota.
        const own = r.limit === null ? 0 : (nonNegativeOrNull(row[r.limit]) ?? 0);
        const tier = r.tierLimit === null ? 0 : (nonNegativeOrNull(row[r.tierLimit]) ?? 0);
        return {
          kind: 'usage',
          source: SOURCE,
          tenant,
          client: tenant,
          agent,
          resource: r.resource,
          used: nonNegativeOrNull(row[r.used]) ?? 0,
          limit: own > 0 ? own : tier,
          periodStart,
          observedAt,
        };
      });
    },
  };
}

function agentSnapshot(source: Parameters<SourceAdapter['build']>[0], names: SourceNames): SnapshotQuery {
  const id = names.required('id');
  const clientId = names.column('client_id');
  const status = names.column('status');
  const activity = names.column('last_interaction_at');
  const lastActivity = activity === null ? `cv.${names.required('updated_at')}` : `coalesce(cv.${activity}, cv.${names.required('updated_at')})`;
  const active = status === null ? 'true' : `coalesce(cv.${status}, 'active') = 'active'`;
  const sql = `WITH activity AS (
      SELECT cv.${names.required('agent_id')} AS agent_id,
        count(*) FILTER (WHERE ${active} AND ${lastActivity} > now() - interval '${AGENT_ONLINE_WINDOW_MINUTES} minutes') AS active_conversations,
        max(${lastActivity}) AS last_activity
      FROM ${names.table('conversations')} cv GROUP BY 1)
    SELECT a.${id}::text AS agent_id, ${names.select('slug', 'agent_slug', 'a')}, ${names.select('enabled', 'enabled', 'a')}, ${names.select('model', 'model', 'a')},
      ${names.select('created_at', 'agent_created_at', 'a')}, ${names.select('updated_at', 'agent_updated_at', 'a')},
      ${clientId === null ? 'NULL AS client_id, NULL AS client_slug, NULL AS client_name' : `c.${id}::text AS client_id, ${names.select('slug', 'client_slug', 'c')}, ${names.select('name', 'client_name', 'c')}`},
      coalesce(x.active_conversations, 0) AS active_conversations, x.last_activity
    FROM ${names.table('agents')} a
    ${clientId === null ? '' : `LEFT JOIN ${names.table('clients')} c ON c.${id} = a.${clientId}`}
    LEFT JOIN activity x ON x.agent_id = a.${id}`;
  return {
    kind: 'snapshot',
    id: `${source.name}/agents`,
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
        tenant: tenantOf(row),
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

function conversationSnapshot(source: Parameters<SourceAdapter['build']>[0], names: SourceNames): SnapshotQuery {
  const join = tenantJoin(names, `cv.${names.required('agent_id')}`);
  const updated = `cv.${names.required('updated_at')}`;
  const sql = `SELECT cv.${names.required('id')}::text AS conversation_id, cv.${names.required('agent_id')}::text AS agent_id,
      ${names.expr('user_id', '$::text', 'user_id', 'cv')}, ${names.select('channel', 'channel', 'cv')}, ${names.select('status', 'status', 'cv')},
      ${names.select('created_at', 'created_at', 'cv')}, ${updated} AS updated_at, ${names.select('last_interaction_at', 'last_interaction_at', 'cv')},
      ${names.select('duration', 'duration', 'cv')}, ${join.columns}
    FROM ${names.table('conversations')} cv ${join.joins}
    WHERE ${updated} > now() - interval '${CONVERSATION_LOOKBACK_HOURS} hours'`;
  return {
    kind: 'snapshot',
    id: `${source.name}/conversations`,
    table: 'conversations',
    sql,
    params: [],
    mapRow(row, _ctx, observedAt): CanonicalEvent[] {
      const conversationId = optionalString(row.conversation_id);
      if (conversationId === null) throw new RowRejected('missing_field', 'conversations.id is missing');
      const startedAt = toIso(row.created_at) ?? observedAt;
      const lastActivityAt = toIso(row.last_interaction_at) ?? toIso(row.updated_at) ?? startedAt;
      const conversation: ConversationSnapshot = {
        kind: 'conversation',
        source: SOURCE,
        tenant: tenantOf(row),
        conversationId,
        agent: optionalString(row.agent_slug) ?? optionalString(row.agent_id),
        user: optionalString(row.user_id),
        channel: optionalString(row.channel) ?? 'unknown',
        status: optionalString(row.status) ?? 'active',
        startedAt,
        lastActivityAt,
        durationSeconds: nonNegativeOrNull(row.duration),
        observedAt,
      };
      return [conversation];
    },
  };
}

/** Conversations per tenant, channel and status, over the whole table. */
function conversationStats(source: Parameters<SourceAdapter['build']>[0], names: SourceNames): SnapshotQuery {
  const join = tenantJoin(names, `cv.${names.required('agent_id')}`);
  const status = names.column('status');
  const sql = `SELECT coalesce(${names.column('client_id') === null ? 'NULL' : `c.${names.required('slug')}, c.${names.required('name')}, c.${names.required('id')}::text`}, 'default') AS tenant,
      coalesce(cv.${names.required('channel')}, 'unknown') AS channel, ${status === null ? "'active'" : `coalesce(cv.${status}, 'active')`} AS status,
      count(*)::bigint AS conversations
    FROM ${names.table('conversations')} cv ${join.joins}
    GROUP BY 1, 2, 3`;
  return {
    kind: 'snapshot',
    id: `${source.name}/conversation_stats`,
    table: 'conversations',
    sql,
    params: [],
    mapRow(row, _ctx, observedAt): CanonicalEvent[] {
      const stats: ConversationStats = {
        kind: 'conversation_stats', source: SOURCE, tenant: optionalString(row.tenant) ?? 'default', channel: optionalString(row.channel) ?? 'unknown',
        status: optionalString(row.status) ?? 'active', conversations: nonNegativeIntegerOrNull(row.conversations) ?? 0, observedAt,
      };
      return [stats];
    },
  };
}

export const sidekickForge: SourceAdapter = {
  type: SOURCE,
  requiredTables: ['agent_usage', 'tier_quotas', 'clients', 'agents', 'conversations', 'conversation_transcripts'],
  reads: {
    conversation_transcripts: ['xmin', 'id', 'conversation_id', 'agent_id', 'user_id', 'role', 'content', 'transcript', 'sequence', 'source', 'created_at'],
    agents: ['id', 'client_id', 'slug', 'enabled', 'model', 'created_at', 'updated_at'],
    clients: ['id', 'slug', 'name', 'tier'],
    agent_usage: [
      'client_id', 'agent_id', 'period_start', 'voice_seconds_used', 'voice_seconds_limit', 'text_messages_used', 'text_messages_limit',
      'embedding_chunks_used', 'embedding_chunks_limit', 'llm_input_tokens', 'llm_output_tokens', 'llm_cached_input_tokens',
    ],
    tier_quotas: ['tier', 'voice_seconds_per_month', 'text_messages_per_month', 'embedding_chunks_per_month'],
    conversations: ['id', 'agent_id', 'user_id', 'channel', 'status', 'created_at', 'updated_at', 'last_interaction_at', 'duration'],
  },
  forbiddenColumns: {
    clients: ['openai_api_key', 'anthropic_api_key', 'groq_api_key', 'deepgram_api_key', 'elevenlabs_api_key', 'cartesia_api_key', 'livekit_url', 'livekit_api_key', 'livekit_api_secret'],
    conversation_transcripts: ['embeddings'],
  },
  build(source) {
    const names = new SourceNames(source);
    return {
      streams: [transcriptStream(source, names)],
      snapshots: [usageSnapshot(source, names), agentSnapshot(source, names), conversationSnapshot(source, names), conversationStats(source, names)],
    };
  },
};
