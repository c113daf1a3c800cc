// Deterministic sample rows for the three source schemas: the embedded demo database and the
// tests use them. A seeded generator, so the same seed gives the same rows everywhere.
import { createHash } from 'node:crypto';
import { seeded } from '../simulate/random.ts';

export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/** The seeded generator the simulator uses (mulberry32). */
export const random = seeded;

/** A UUID derived from a string, so generated rows have stable ids. */
export function uuidFrom(text: string): string {
  const h = createHash('sha1').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)]!;
}

export const SAMPLE_DOMAINS = ['acme.example.com', 'globex.example.com', 'initech.example.com', 'umbrella.example.com', 'localhost:3000'];
export const SAMPLE_MODELS = ['claude-sonnet-4-5-20250929', 'claude-opus-4-1-20250805', 'claude-haiku-4-5-20251001', 'claude-3-5-haiku-20241022'];

/** Inserts rows in chunks of multi-row INSERTs. */
export async function insertRows(db: Queryable, table: string, columns: string[], rows: unknown[][], chunk = 500): Promise<void> {
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk);
    const params: unknown[] = [];
    const values = part.map((row) => `(${row.map((v) => {
      // ISO text keeps `timestamp without time zone` columns in UTC whatever the process TZ.
      params.push(v instanceof Date ? v.toISOString() : v);
      return `$${params.length}`;
    }).join(', ')})`);
    await db.query(`INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(', ')}) VALUES ${values.join(', ')}`, params);
  }
}

export const API_REQUEST_COLUMNS = [
  'request_id', 'domain', 'timestamp', 'model', 'request_type', 'response_status', 'response_streaming',
  'input_tokens', 'output_tokens', 'total_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens',
  'first_token_ms', 'duration_ms', 'error', 'tool_call_count', 'conversation_id', 'branch_id', 'message_count',
  'is_subtask', 'parent_task_request_id', 'account_id', 'api_key_hash', 'headers', 'body', 'response_body', 'response_headers',
];

/** api_requests rows spread over `spanMs` ending at `end`. */
export function apiRequestRows(count: number, options: { seed?: number; end?: Date; spanMs?: number; idPrefix?: string } = {}): unknown[][] {
  const rnd = random(options.seed ?? 1);
  const end = (options.end ?? new Date()).getTime();
  const span = options.spanMs ?? 24 * 3_600_000;
  const rows: unknown[][] = [];
  const conversations: string[] = [];
  for (let i = 0; i < count; i++) {
    const domain = pick(rnd, SAMPLE_DOMAINS);
    const model = pick(rnd, SAMPLE_MODELS);
    const roll = rnd();
    const status = roll < 0.03 ? 429 : roll < 0.05 ? 500 : roll < 0.06 ? 400 : 200;
    const input = Math.floor(rnd() * 4000) + 10;
    const output = status === 200 ? Math.floor(rnd() * 1500) + 1 : 0;
    const cacheRead = rnd() < 0.5 ? Math.floor(rnd() * 20000) : 0;
    const cacheWrite = rnd() < 0.2 ? Math.floor(rnd() * 5000) : 0;
    const duration = Math.floor(200 + rnd() * 30000);
    let conversation: string;
    if (conversations.length > 0 && rnd() < 0.7) conversation = pick(rnd, conversations);
    else {
      conversation = uuidFrom(`${options.idPrefix ?? ''}conv-${i}`);
      conversations.push(conversation);
    }
    const isSubtask = rnd() < 0.08;
    const started = new Date(end - Math.floor(rnd() * span));
    const errorBody = status === 429 ? { type: 'error', error: { type: 'rate_limit_error', message: 'rate limited' } }
      : status >= 400 ? { type: 'error', error: { type: status === 500 ? 'api_error' : 'invalid_request_error', message: 'failed' } } : null;
    rows.push([
      uuidFrom(`${options.idPrefix ?? ''}req-${options.seed ?? 1}-${i}`),
      domain,
      started,
      model,
      'inference',
      status,
      rnd() < 0.8,
      input,
      output,
      input + output,
      cacheWrite,
      cacheRead,
      status === 200 ? Math.floor(100 + rnd() * 2000) : null,
      duration,
      status >= 500 ? 'upstream error' : null,
      rnd() < 0.3 ? Math.floor(rnd() * 5) : 0,
      conversation,
      isSubtask ? `subtask_${Math.floor(rnd() * 3) + 1}` : 'main',
      Math.floor(rnd() * 40) + 1,
      isSubtask,
      null,
      `acct-${domain.split('.')[0]}`,
      `hash-${Math.floor(rnd() * 20)}`,
      JSON.stringify({ 'x-api-key': 'sk-ant-secret-never-read' }),
      JSON.stringify({ model, messages: [{ role: 'user', content: `Question ${i} from ${domain}: how do I reach support@${domain}?` }] }),
      JSON.stringify(errorBody ?? { content: [{ type: 'text', text: `Answer ${i}` }], usage: { input_tokens: input, output_tokens: output } }),
      JSON.stringify({ 'anthropic-ratelimit-unified-status': rnd() < 0.05 ? 'allowed_warning' : 'allowed' }),
    ]);
  }
  return rows;
}

export const SPEND_LOG_COLUMNS = [
  'request_id', 'call_type', 'api_key', 'spend', 'total_tokens', 'prompt_tokens', 'completion_tokens', 'startTime', 'endTime',
  'completionStartTime', 'request_duration_ms', 'model', 'model_group', 'custom_llm_provider', 'team_id', 'end_user', 'session_id', 'status', 'metadata',
];

export function spendLogRows(count: number, options: { seed?: number; end?: Date; spanMs?: number } = {}): unknown[][] {
  const rnd = random(options.seed ?? 2);
  const end = (options.end ?? new Date()).getTime();
  const span = options.spanMs ?? 24 * 3_600_000;
  const teams = ['team-search', 'team-support', 'team-growth'];
  const models = [['gpt-4o', 'openai'], ['gpt-4o-mini', 'openai'], ['claude-sonnet-4-5', 'anthropic'], ['text-embedding-3-small', 'openai']] as const;
  const rows: unknown[][] = [];
  for (let i = 0; i < count; i++) {
    const [model, provider] = pick(rnd, models);
    const embedding = model.startsWith('text-embedding');
    const prompt = Math.floor(rnd() * 3000) + 5;
    const completion = embedding ? 0 : Math.floor(rnd() * 800);
    const start = new Date(end - Math.floor(rnd() * span));
    const duration = Math.floor(100 + rnd() * 8000);
    const failed = rnd() < 0.04;
    rows.push([
      `chatcmpl-${options.seed ?? 2}-${i}`,
      embedding ? 'aembedding' : 'acompletion',
      `hashed-key-${i % 7}`,
      Math.round(((prompt * 2.5 + completion * 10) / 1_000_000) * 1e8) / 1e8,
      prompt + completion,
      prompt,
      completion,
      start,
      new Date(start.getTime() + duration),
      embedding ? null : new Date(start.getTime() + Math.floor(duration * 0.2)),
      duration,
      model,
      model,
      provider,
      pick(rnd, teams),
      `user-${i % 11}`,
      `session-${i % 50}`,
      failed ? 'failure' : 'success',
      JSON.stringify(failed ? { error_information: { error_class: 'RateLimitError', error_code: '429' } } : { usage_object: { cache_read_input_tokens: Math.floor(rnd() * 100) } }),
    ]);
  }
  return rows;
}

/**
 * Sidekick Forge, on the platform database's real schema: tiers, clients (one with no tier,
 * one that moved tier after its usage rows were created, so their *_limit copies are stale),
 * agents (no client_id: tied to their client by agent_usage), usage for the current month
 * (one usage row of an agent since deleted), conversations and transcripts (recent ones for
 * the first agent of each client), the activity log and LiveKit room events.
 */
export async function seedSidekickForge(db: Queryable, options: { seed?: number; clients?: number; agentsPerClient?: number; conversations?: number; now?: Date } = {}): Promise<void> {
  const rnd = random(options.seed ?? 3);
  const now = options.now ?? new Date();
  const periodStart = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}-01`;
  await insertRows(db, 'tier_quotas', ['tier', 'voice_seconds_per_month', 'text_messages_per_month', 'embedding_chunks_per_month'], [
    ['adventurer', 6000, 1000, 10000],
    ['champion', 30000, 10000, 100000],
    ['paragon', 120000, 0, 500000],
  ]);
  const tiers = ['adventurer', 'champion', 'paragon', null];
  const agentIds: { id: string; client: string }[] = [];
  const clientRows: unknown[][] = [];
  const agentRows: unknown[][] = [];
  const usageRows: unknown[][] = [];
  const activityRows: unknown[][] = [];
  const clients = options.clients ?? 4;
  const perClient = options.agentsPerClient ?? 3;
  for (let c = 0; c < clients; c++) {
    const clientId = uuidFrom(`client-${c}`);
    clientRows.push([clientId, `Client ${c}`, tiers[c % tiers.length], 'sk-secret-openai', 'lk-secret']);
    for (let a = 0; a < perClient; a++) {
      const agentId = uuidFrom(`agent-${c}-${a}`);
      agentIds.push({ id: agentId, client: clientId });
      // The second agent of every client had its configuration changed after creation.
      agentRows.push([agentId, `agent-${c}-${a}`, `Agent ${c}.${a}`, 'You are helpful.', 'gpt-4o-mini', a !== 2,
        new Date(now.getTime() - 30 * 86_400_000), a === 1 ? new Date(now.getTime() - 3_600_000) : new Date(now.getTime() - 30 * 86_400_000)]);
      // Limits copied from the adventurer tier when the rows were made: stale for other tiers.
      usageRows.push([
        clientId, agentId, periodStart,
        Math.floor(rnd() * (c === 0 ? 2500 : 20000)), 6000,
        Math.floor(rnd() * 400), 1000,
        Math.floor(rnd() * 3000), 10000,
        Math.floor(rnd() * 500000), Math.floor(rnd() * 200000), Math.floor(rnd() * 100000),
        Math.floor(rnd() * 40), now,
      ]);
      if (a === 1) activityRows.push([uuidFrom(`activity-${c}-${a}`), 'sidekick_updated', 'update', clientId, agentId, 'sidekick', agentId, `Agent ${c}.${a}`, 'success', new Date(now.getTime() - 3_600_000)]);
    }
    // Usage of an agent that was deleted since: still the client's.
    usageRows.push([clientId, uuidFrom(`deleted-agent-${c}`), periodStart, 120, 6000, 15, 1000, 0, 10000, 0, 0, 0, 1, now]);
    activityRows.push([uuidFrom(`document-${c}`), 'document_uploaded', 'create', clientId, null, 'document', `doc-${c}`, `Handbook ${c}.pdf`, 'success', new Date(now.getTime() - 7_200_000)]);
  }
  await insertRows(db, 'clients', ['id', 'name', 'tier', 'openai_api_key', 'livekit_api_secret'], clientRows);
  await insertRows(db, 'agents', ['id', 'slug', 'name', 'system_prompt', 'model', 'enabled', 'created_at', 'updated_at'], agentRows);
  await insertRows(db, 'agent_usage', [
    'client_id', 'agent_id', 'period_start', 'voice_seconds_used', 'voice_seconds_limit', 'text_messages_used', 'text_messages_limit',
    'embedding_chunks_used', 'embedding_chunks_limit', 'llm_input_tokens', 'llm_output_tokens', 'llm_cached_input_tokens', 'session_count', 'last_session_at',
  ], usageRows);
  await insertRows(db, 'activity_log', ['id', 'activity_type', 'action', 'client_id', 'agent_id', 'resource_type', 'resource_id', 'resource_name', 'status', 'created_at'], activityRows);
  const conversationRows: unknown[][] = [];
  const transcriptRows: unknown[][] = [];
  const livekitRows: unknown[][] = [];
  const channels = ['voice', 'text'];
  for (let i = 0; i < (options.conversations ?? 200); i++) {
    // Every tenth conversation is live, always on the first agent of a client, so the other
    // agents show as idle (or offline when disabled).
    const recent = i % 10 === 0;
    const agent = recent ? agentIds[((i / 10) % clients) * perClient]! : pick(rnd, agentIds);
    const id = uuidFrom(`conversation-${i}`);
    const turns = Math.floor(rnd() * 6) + 1;
    const created = recent ? new Date(now.getTime() - 60_000 - turns * 40_000) : new Date(now.getTime() - Math.floor(rnd() * 20 * 3_600_000) - 3_600_000);
    const channel = pick(rnd, channels);
    conversationRows.push([id, id, agent.id, uuidFrom(`user-${i % 30}`), channel, created, created]);
    for (let t = 0; t < turns; t++) {
      const turn = uuidFrom(`turn-${i}-${t}`);
      const at = new Date(created.getTime() + t * 40_000);
      transcriptRows.push([uuidFrom(`msg-${i}-${t}-u`), id, id, agent.id, 'user', `User message ${t} call me at +1 555 010 ${1000 + i}`, turn, t * 2, channel, at]);
      transcriptRows.push([uuidFrom(`msg-${i}-${t}-a`), id, id, agent.id, 'assistant', `Assistant reply ${t}`, turn, t * 2 + 1, channel, new Date(at.getTime() + 2000)]);
    }
    if (channel === 'voice') {
      const metadata = JSON.stringify({ client_id: agent.client, agent_id: agent.id });
      livekitRows.push([uuidFrom(`room-start-${i}`), 'room_started', `room-${i}`, null, metadata, created]);
      if (!recent) livekitRows.push([uuidFrom(`room-end-${i}`), 'room_finished', `room-${i}`, turns * 40, metadata, new Date(created.getTime() + turns * 40_000)]);
    }
  }
  await insertRows(db, 'conversations', ['id', 'session_id', 'agent_id', 'user_id', 'channel', 'created_at', 'updated_at'], conversationRows);
  await insertRows(db, 'conversation_transcripts', ['id', 'conversation_id', 'session_id', 'agent_id', 'role', 'content', 'turn_id', 'sequence', 'source', 'created_at'], transcriptRows);
  await insertRows(db, 'livekit_events', ['id', 'event_type', 'room_name', 'duration', 'metadata', 'created_at'], livekitRows);
}

/** Seeds all three schemas (DDL must already exist). */
export async function seedAll(db: Queryable, options: { requests?: number; spendLogs?: number; now?: Date } = {}): Promise<void> {
  const end = options.now ?? new Date();
  await insertRows(db, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(options.requests ?? 3000, { end, spanMs: 7 * 24 * 3_600_000 }));
  await insertRows(db, '"LiteLLM_SpendLogs"', SPEND_LOG_COLUMNS, spendLogRows(options.spendLogs ?? 1500, { end, spanMs: 7 * 24 * 3_600_000 }));
  await insertRows(db, '"LiteLLM_ErrorLogs"', ['request_id', 'startTime', 'endTime', 'model_group', 'exception_type', 'status_code'], [
    ['err-1', new Date(end.getTime() - 3_600_000), new Date(end.getTime() - 3_599_000), 'gpt-4o', 'RateLimitError', '429'],
    ['err-2', new Date(end.getTime() - 1_800_000), new Date(end.getTime() - 1_799_000), 'claude-sonnet-4-5', 'APIConnectionError', '500'],
  ]);
  await seedSidekickForge(db, { now: end });
}
