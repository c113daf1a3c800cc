// LiteLLM gateway traffic: one LiteLLM_SpendLogs row per call (LiteLLM writes it when the call
// ends, with the spend it computed), teams with several keys and users, embeddings next to
// chat, failures recorded as status "failure" with their error class, and a few deployment
// errors in LiteLLM_ErrorLogs.
import { hex, logNormal, pick, weighted, type Random } from './random.ts';
import { incidentsAt } from './rhythm.ts';
import { GATEWAY_MODELS, type World } from './world.ts';
import type { PendingRow } from './nexus.ts';

const FAILURES = [
  { weight: 5, error_class: 'RateLimitError', error_code: '429' },
  { weight: 3, error_class: 'APIConnectionError', error_code: '500' },
  { weight: 1, error_class: 'Timeout', error_code: '408' },
  { weight: 1, error_class: 'ContextWindowExceededError', error_code: '400' },
];

/** `timestamp without time zone` as LiteLLM writes it: UTC wall-clock time. */
function utc(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '');
}

export function litellmCall(rnd: Random, world: World, start: number): PendingRow[] {
  const team = weighted(rnd, world.teams.map((t) => ({ weight: t.weight, value: t })));
  const model = weighted(rnd, GATEWAY_MODELS.map((m) => ({ weight: m.weight, value: m })));
  const embedding = model.callType === 'aembedding';
  const overloaded = incidentsAt(start, world.seed + 1, world.teams.length).some((i) => i.kind === 'overloaded');
  const failure = rnd() < (overloaded ? 0.2 : 0.025) ? weighted(rnd, FAILURES.map((f) => ({ weight: f.weight, value: f }))) : null;
  const prompt = Math.max(1, Math.round(logNormal(rnd, embedding ? 300 : 1800, 1.0)));
  const completion = embedding || failure ? 0 : Math.max(1, Math.round(logNormal(rnd, model.outputMedian, model.outputSigma)));
  const ttft = Math.round(logNormal(rnd, model.ttftMedianMs, 0.5));
  const duration = embedding ? ttft : failure ? Math.round(logNormal(rnd, 800, 0.8)) : Math.round(ttft + (completion / logNormal(rnd, model.tokensPerSecond, 0.25)) * 1000);
  const cacheRead = !embedding && rnd() < 0.3 ? Math.floor(prompt * 0.6) : 0;
  const spend = failure ? 0 : Math.round(((prompt - cacheRead * 0.9) * model.input + completion * model.output) * 1e3) / 1e9;
  const id = `chatcmpl-${hex(rnd, 29)}`;
  const row: Record<string, unknown> = {
    request_id: id,
    call_type: model.callType,
    api_key: pick(rnd, team.keys),
    spend,
    total_tokens: prompt + completion,
    prompt_tokens: prompt,
    completion_tokens: completion,
    startTime: utc(start),
    endTime: utc(start + duration),
    completionStartTime: embedding || failure ? null : utc(start + ttft),
    request_duration_ms: duration,
    model: model.name,
    model_id: hex(rnd, 16),
    model_group: model.name,
    custom_llm_provider: model.provider,
    api_base: `https://${model.provider}.gateway.internal/v1`,
    user: pick(rnd, team.users),
    metadata: JSON.stringify(failure
      ? { user_api_key_team_alias: team.team, error_information: { error_class: failure.error_class, error_code: failure.error_code, error_message: `litellm.${failure.error_class}` } }
      : { user_api_key_team_alias: team.team, usage_object: { prompt_tokens: prompt, completion_tokens: completion, cache_read_input_tokens: cacheRead } }),
    cache_hit: 'False',
    cache_key: '',
    request_tags: JSON.stringify(rnd() < 0.3 ? ['prod'] : []),
    team_id: team.team,
    organization_id: team.organization,
    // LiteLLM writes '' for a missing end user, not NULL.
    end_user: rnd() < 0.5 ? pick(rnd, team.users) : '',
    requester_ip_address: `10.0.${Math.floor(rnd() * 8)}.${Math.floor(rnd() * 250)}`,
    session_id: `sess-${hex(rnd, 8)}`,
    status: failure ? 'failure' : 'success',
  };
  const rows: PendingRow[] = [{ table: '"LiteLLM_SpendLogs"', at: start + duration, row }];
  // A deployment that could not be reached at all: LiteLLM's error log.
  if (failure?.error_class === 'APIConnectionError' && rnd() < 0.3) {
    rows.push({
      table: '"LiteLLM_ErrorLogs"', at: start + duration,
      row: {
        request_id: `err-${hex(rnd, 24)}`, startTime: utc(start), endTime: utc(start + duration), api_base: row.api_base, model_group: model.name,
        litellm_model_name: model.name, model_id: row.model_id, exception_type: 'APIConnectionError', exception_string: 'Connection refused', status_code: '500',
      },
    });
  }
  return rows;
}
