// Claude Nexus Proxy traffic: conversations of several turns against Claude models, each turn
// one api_requests row carrying the conversation so far, some turns with tool calls, some
// spawning sub-tasks (the `Task` tool) and a few branching. The proxy writes a row when the
// response ends: a row's `timestamp` is its request's start, and it commits `duration_ms`
// later, so rows arrive late and out of order.
import { createHash } from 'node:crypto';
import { logNormal, pick, uuid, weighted, hex, type Random } from './random.ts';
import { incidentsAt } from './rhythm.ts';
import { CLAUDE_MODELS, type NexusTenant, type World } from './world.ts';
import { ask, reply } from './text.ts';

export interface PendingRow {
  table: string;
  /** When the row is written (and commits): the response's end. */
  at: number;
  row: Record<string, unknown>;
  /** Later versions of the row, written right after it as UPDATEs by id (a streamed reply). */
  updates?: Record<string, unknown>[];
}

type Message = { role: 'user' | 'assistant'; content: string | { type: string; text: string }[] };

const ERRORS = {
  overloaded: { status: 529, type: 'overloaded_error', message: 'Overloaded' },
  rate_limited: { status: 429, type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit' },
  api: { status: 500, type: 'api_error', message: 'Internal server error' },
  invalid: { status: 400, type: 'invalid_request_error', message: 'prompt is too long: 212045 tokens > 200000 maximum' },
} as const;

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** One request of a conversation, as the row the proxy writes when its response ends. */
function request(rnd: Random, world: World, tenant: NexusTenant, tenantIndex: number, start: number, options: {
  conversationId: string; branchId: string; messages: Message[]; model: (typeof CLAUDE_MODELS)[number]; parentRequestId: string | null; parentHash: string | null;
  parentTaskRequestId: string | null; taskInvocation: unknown;
}): { row: Record<string, unknown>; end: number; reply: string; hash: string; toolCalls: number; spawnsTask: boolean } {
  const { model, messages } = options;
  const id = uuid(rnd);
  const incident = incidentsAt(start, world.seed, world.nexus.length).find((i) => i.kind === 'overloaded' || i.tenant === tenantIndex);
  const roll = rnd();
  const error = incident && roll < incident.share ? ERRORS[incident.kind] : roll < 0.003 ? ERRORS.api : roll < 0.005 ? ERRORS.invalid : null;
  const proxyError = error === null && rnd() < 0.001;
  const historyTokens = messages.reduce((n, m) => n + Math.ceil(JSON.stringify(m.content).length / 4), 0);
  const input = tenant.systemTokens + historyTokens;
  // Prompt caching: later turns read the system prompt and history from the cache.
  const cacheRead = messages.length > 1 && rnd() < 0.7 ? Math.floor(input * 0.85) : 0;
  const cacheCreation = messages.length === 1 && rnd() < 0.5 ? tenant.systemTokens : 0;
  const output = error || proxyError ? 0 : Math.min(8192, Math.max(1, Math.round(logNormal(rnd, model.outputMedian, model.outputSigma))));
  const ttft = Math.round(logNormal(rnd, model.ttftMedianMs * (1 + input / 100_000), 0.5));
  const duration = error ? Math.round(logNormal(rnd, 300, 0.6)) : Math.round(ttft + (output / logNormal(rnd, model.tokensPerSecond, 0.25)) * 1000);
  const toolCalls = error || rnd() > 0.25 ? 0 : 1 + Math.floor(rnd() * 3);
  const spawnsTask = !error && options.parentTaskRequestId === null && rnd() < 0.04;
  const text = error ? '' : reply(rnd, Math.round(output / 1.3));
  const content = [{ type: 'text', text }, ...(spawnsTask ? [{ type: 'tool_use', name: 'Task', input: { description: 'Investigate the failing test', prompt: ask(rnd) } }] : [])];
  const streaming = rnd() < 0.85;
  const hash = sha(`${options.conversationId}:${messages.length}:${id}`);
  // The usage block as the API returns it: a quarter of cache writes are for one hour, some
  // tool calls are web searches (billed per request). Taken from the id, so the random
  // sequence (and every other value of the simulation) stays as it was.
  const oneHour = parseInt(id[0]!, 16) < 4;
  const webSearches = toolCalls > 0 && parseInt(id[1]!, 16) < 3 ? toolCalls : 0;
  const usage = {
    input_tokens: input - cacheRead, output_tokens: output, cache_read_input_tokens: cacheRead, cache_creation_input_tokens: cacheCreation,
    cache_creation: { ephemeral_5m_input_tokens: oneHour ? 0 : cacheCreation, ephemeral_1h_input_tokens: oneHour ? cacheCreation : 0 },
    ...(webSearches > 0 ? { server_tool_use: { web_search_requests: webSearches } } : {}),
    service_tier: 'standard',
  };
  const ratelimit = incident?.kind === 'rate_limited' ? 'allowed_warning' : rnd() < 0.01 ? 'allowed_warning' : 'allowed';
  const row: Record<string, unknown> = {
    request_id: id,
    domain: tenant.domain,
    timestamp: new Date(start).toISOString(),
    method: 'POST',
    path: '/v1/messages',
    // The proxy stores request headers, API keys included: tokenwatch never reads them.
    headers: JSON.stringify({ 'user-agent': 'claude-cli/2.0.14 (external, cli)', 'x-api-key': `sk-ant-api03-simulated-${hex(rnd, 16)}`, 'anthropic-version': '2023-06-01' }),
    body: JSON.stringify({ model: model.name, max_tokens: 8192, stream: streaming, system: 'You are a helpful assistant.', messages }),
    api_key_hash: tenant.apiKeyHash,
    model: model.name,
    request_type: rnd() < 0.97 ? 'inference' : rnd() < 0.7 ? 'query_evaluation' : 'quota',
    response_status: proxyError ? 502 : error ? error.status : 200,
    response_headers: JSON.stringify({ 'anthropic-ratelimit-unified-status': ratelimit, 'request-id': `req_${hex(rnd, 24)}` }),
    response_body: JSON.stringify(error ? { type: 'error', error: { type: error.type, message: error.message } } : { id: `msg_${hex(rnd, 24)}`, type: 'message', role: 'assistant', model: model.name, content, stop_reason: spawnsTask || toolCalls ? 'tool_use' : 'end_turn', usage }),
    response_streaming: streaming,
    input_tokens: usage.input_tokens,
    output_tokens: output,
    total_tokens: usage.input_tokens + output,
    cache_creation_input_tokens: cacheCreation,
    cache_read_input_tokens: cacheRead,
    usage_data: JSON.stringify(usage),
    first_token_ms: error ? null : ttft,
    duration_ms: duration,
    error: proxyError ? 'upstream connect error or disconnect/reset before headers' : null,
    tool_call_count: toolCalls + (spawnsTask ? 1 : 0),
    current_message_hash: hash,
    parent_message_hash: options.parentHash,
    conversation_id: options.conversationId,
    branch_id: options.branchId,
    message_count: messages.length + 1,
    parent_task_request_id: options.parentTaskRequestId,
    is_subtask: options.parentTaskRequestId !== null,
    task_tool_invocation: options.taskInvocation === null ? null : JSON.stringify(options.taskInvocation),
    account_id: tenant.account,
    parent_request_id: options.parentRequestId,
    system_hash: sha(`${tenant.domain}:system`).slice(0, 64),
  };
  return { row, end: start + duration, reply: text, hash, toolCalls, spawnsTask };
}

/**
 * A conversation starting at `start`: 1 to ~12 user turns with think time between them,
 * requests for tool results, sub-tasks and now and then a branch. Rows end after `until` are
 * not returned (their responses are still running).
 */
export function nexusConversation(rnd: Random, world: World, start: number): PendingRow[] {
  const tenantIndex = weighted(rnd, world.nexus.map((t, i) => ({ weight: t.weight, value: i })));
  const tenant = world.nexus[tenantIndex]!;
  const model = weighted(rnd, CLAUDE_MODELS.map((m) => ({ weight: m.weight, value: m })));
  const conversationId = uuid(rnd);
  const turns = 1 + Math.min(11, Math.floor(-Math.log(Math.max(rnd(), 1e-9)) * 3));
  const rows: PendingRow[] = [];
  let messages: Message[] = [];
  let at = start;
  let previous: { id: string; hash: string } | null = null;
  let branch = 'main';
  for (let turn = 0; turn < turns; turn++) {
    // A branch: the user goes back and edits an earlier message.
    if (turn > 1 && rnd() < 0.06) {
      branch = `branch_${Math.floor(at / 1000)}`;
      messages = messages.slice(0, Math.max(1, messages.length - 2));
    }
    messages = [...messages, { role: 'user', content: ask(rnd) }];
    let r = request(rnd, world, tenant, tenantIndex, at, { conversationId, branchId: branch, messages, model, parentRequestId: previous?.id ?? null, parentHash: previous?.hash ?? null, parentTaskRequestId: null, taskInvocation: null });
    rows.push({ table: 'api_requests', at: r.end, row: r.row });
    // Tool results go back at once, as another request of the same turn.
    for (let tool = 0; tool < r.toolCalls && tool < 2; tool++) {
      const withResult: Message[] = [...messages, { role: 'assistant', content: [{ type: 'text', text: r.reply }] }, { role: 'user', content: [{ type: 'tool_result', text: 'ok' }] }];
      const follow = request(rnd, world, tenant, tenantIndex, r.end + 50, { conversationId, branchId: branch, messages: withResult, model, parentRequestId: String(r.row.request_id), parentHash: r.hash, parentTaskRequestId: null, taskInvocation: null });
      rows.push({ table: 'api_requests', at: follow.end, row: follow.row });
      r = { ...follow, spawnsTask: r.spawnsTask || follow.spawnsTask };
    }
    // A Task tool call spawns sub-task requests after the parent's response.
    if (r.spawnsTask) {
      const parentTask = String(r.row.request_id);
      let taskAt = r.end + 200;
      const subtasks = 1 + Math.floor(rnd() * 3);
      for (let n = 1; n <= subtasks; n++) {
        const task = request(rnd, world, tenant, tenantIndex, taskAt, {
          conversationId, branchId: `subtask_${n}`, messages: [{ role: 'user', content: ask(rnd) }], model: pick(rnd, CLAUDE_MODELS.slice(0, 2)),
          parentRequestId: null, parentHash: null, parentTaskRequestId: parentTask, taskInvocation: { name: 'Task', subtask: n },
        });
        rows.push({ table: 'api_requests', at: task.end, row: task.row });
        taskAt = task.end + 100;
      }
    }
    messages = [...messages, { role: 'assistant', content: [{ type: 'text', text: r.reply }] }];
    previous = { id: String(r.row.request_id), hash: r.hash };
    at = r.end + Math.round(logNormal(rnd, 45_000, 0.8));
  }
  return rows;
}

/** Requests per conversation on average (turns, tool follow-ups, sub-tasks), for converting a request rate to conversations. */
export const NEXUS_REQUESTS_PER_CONVERSATION = 5.2;
