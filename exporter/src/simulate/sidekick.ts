// Sidekick Forge, written as the platform writes its real schema: clients of three tiers with
// their agents (one of them switched off; agents have no client_id), voice and text
// conversations of several turns (a transcript row for the user and one for the agent per
// turn, sharing the turn id; the conversation row is inserted once, at the start, and never
// updated), agents whose configuration changes now and then, and usage counters (rows created
// with the tier's limits copied in, then incremented in place) that fill up through the month,
// some clients past 80, 90 and 100 % of their quota.
import { logNormal, pick, uuid, weighted, type Random } from './random.ts';
import { TIERS, type SidekickClient, type World } from './world.ts';
import { ask, reply } from './text.ts';
import type { PendingRow } from './nexus.ts';

const CHANNELS = [
  { weight: 45, value: 'voice' }, { weight: 40, value: 'text' }, { weight: 10, value: 'hybrid' }, { weight: 5, value: 'telegram' },
];

/** The rows that set the platform up: tiers, clients (with their provider secrets, never read), agents. */
export function sidekickSetup(world: World, now: number): { table: string; row: Record<string, unknown> }[] {
  const rows: { table: string; row: Record<string, unknown> }[] = TIERS.map((t) => ({
    table: 'tier_quotas', row: { tier: t.tier, voice_seconds_per_month: t.voice, text_messages_per_month: t.text, embedding_chunks_per_month: t.embedding, uses_platform_keys: true },
  }));
  for (const client of world.clients) {
    rows.push({
      table: 'clients',
      row: {
        id: client.id, name: client.name, tier: client.tier, hosting_type: client.tier === 'adventurer' ? 'shared' : 'dedicated',
        openai_api_key: 'sk-proj-simulated-secret', livekit_api_secret: 'simulated-livekit-secret',
        created_at: new Date(Date.UTC(2026, 4, 1)).toISOString(), updated_at: new Date(now).toISOString(),
      },
    });
    for (const agent of client.agents) {
      rows.push({
        table: 'agents',
        row: {
          id: agent.id, slug: agent.slug, name: agent.name, system_prompt: `You are the ${agent.name}.`, model: agent.model, enabled: agent.enabled,
          voice_settings: JSON.stringify({ voice: 'alloy' }), tools_config: JSON.stringify({}), created_at: new Date(agent.createdAt).toISOString(), updated_at: new Date(agent.createdAt).toISOString(),
        },
      });
    }
  }
  return rows;
}

function monthStart(t: number): number {
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/**
 * agent_usage rows of the month holding `now` (and of the month before, complete): each
 * client's agents share its quota usage, which grows through the month towards the client's
 * quotaShare of its tier's limits.
 */
export function sidekickUsage(world: World, now: number): { table: string; row: Record<string, unknown> }[] {
  const rows: { table: string; row: Record<string, unknown> }[] = [];
  const start = monthStart(now);
  const previous = monthStart(start - 1);
  for (const client of world.clients) {
    const tier = TIERS.find((t) => t.tier === client.tier)!;
    for (const [period, share] of [[previous, client.quotaShare * 0.9], [start, client.quotaShare]] as const) {
      const enabled = client.agents.filter((a) => a.enabled);
      client.agents.forEach((agent, a) => {
        // The busiest agent takes half the client's usage, the others share the rest.
        const part = !agent.enabled ? 0 : a === 0 ? 0.5 : 0.5 / Math.max(1, enabled.length - 1);
        const of = (limit: number) => Math.round(limit * share * part);
        rows.push({
          table: 'agent_usage',
          row: {
            client_id: client.id, agent_id: agent.id, period_start: new Date(period).toISOString().slice(0, 10),
            // The tier's limits, copied when the row is created (as ensure_agent_usage_row does).
            voice_seconds_used: of(tier.voice), voice_seconds_limit: tier.voice, text_messages_used: of(tier.text), text_messages_limit: tier.text,
            embedding_chunks_used: of(tier.embedding * 0.4), embedding_chunks_limit: tier.embedding,
            llm_input_tokens: of(tier.text) * 900, llm_output_tokens: of(tier.text) * 250, llm_cached_input_tokens: of(tier.text) * 300,
            tts_characters: of(tier.voice) * 14, tts_audio_seconds: of(tier.voice) * 0.55, stt_audio_seconds: of(tier.voice) * 0.45,
            session_count: Math.round(of(tier.text) / 6), last_session_at: new Date(now - 60_000).toISOString(), updated_at: new Date(now).toISOString(),
          },
        });
      });
    }
  }
  return rows;
}

/** The growing text of a streamed reply: its first third, two thirds, then all of it. */
function streamedChunks(text: string): string[] {
  const words = text.split(' ');
  if (words.length < 3) return [text];
  return [words.slice(0, Math.ceil(words.length / 3)).join(' '), words.slice(0, Math.ceil((2 * words.length) / 3)).join(' '), text];
}

/** One conversation with an agent: the conversations row (written at the start, updated as it goes) and its transcript. */
export function sidekickConversation(rnd: Random, world: World, start: number): { conversation: Record<string, unknown>; turns: PendingRow[]; endsAt: number; client: SidekickClient } {
  const client = weighted(rnd, world.clients.map((c) => ({ weight: c.weight, value: c })));
  const agent = pick(rnd, client.agents.filter((a) => a.enabled));
  const channel = weighted(rnd, CHANNELS);
  const voice = channel === 'voice' || channel === 'hybrid';
  const id = uuid(rnd);
  const session = uuid(rnd);
  const user = uuid(rnd);
  const turnCount = 1 + Math.min(15, Math.floor(-Math.log(Math.max(rnd(), 1e-9)) * 4));
  const turns: PendingRow[] = [];
  let at = start;
  for (let t = 0; t < turnCount; t++) {
    const turnId = uuid(rnd);
    const userAt = at + Math.round(logNormal(rnd, voice ? 6000 : 20_000, 0.6));
    const agentAt = userAt + Math.round(logNormal(rnd, voice ? 1200 : 2500, 0.5));
    const base = { conversation_id: id, session_id: session, agent_id: agent.id, user_id: user, turn_id: turnId, source: voice ? 'voice' : 'text', citations: '[]', metadata: '{}' };
    turns.push({ table: 'conversation_transcripts', at: userAt, row: { ...base, id: uuid(rnd), role: 'user', content: ask(rnd), transcript: voice ? 'transcribed' : null, sequence: t * 2, created_at: new Date(userAt).toISOString(), updated_at: new Date(userAt).toISOString() } });
    const answer = reply(rnd, 30 + Math.floor(rnd() * 60));
    // A voice reply is streamed: the agent inserts it with its first chunk and rewrites the row as chunks arrive.
    const chunks = voice ? streamedChunks(answer) : [answer];
    turns.push({
      table: 'conversation_transcripts', at: agentAt,
      row: { ...base, id: uuid(rnd), role: 'assistant', content: chunks[0], transcript: chunks[0], sequence: t * 2 + 1, created_at: new Date(agentAt).toISOString(), updated_at: new Date(agentAt).toISOString() },
      ...(chunks.length > 1 ? { updates: chunks.slice(1).map((content) => ({ content, transcript: content })) } : {}),
    });
    at = agentAt;
  }
  const conversation = {
    id, session_id: session, agent_id: agent.id, user_id: user, metadata: JSON.stringify({ channel }), channel,
    created_at: new Date(start).toISOString(), updated_at: new Date(start).toISOString(),
  };
  return { conversation, turns, endsAt: at, client };
}
