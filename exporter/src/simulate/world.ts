// The simulated platforms: who the tenants are, which models they use and how those models
// behave. Sizes follow a Zipf law (two large tenants, a long tail), models have their own
// token and latency profiles, all fixed by the seed.
import { seeded, uuid, hex, zipf, type Random } from './random.ts';

export interface ModelProfile {
  name: string;
  /** Share of a tenant's requests. */
  weight: number;
  /** Median output tokens and the spread of their logarithm. */
  outputMedian: number;
  outputSigma: number;
  /** Median time to first token, ms. */
  ttftMedianMs: number;
  /** Median output tokens per second. */
  tokensPerSecond: number;
}

/** Claude models as Claude Nexus Proxy sees them (the names its users send). */
export const CLAUDE_MODELS: readonly ModelProfile[] = [
  { name: 'claude-sonnet-4-5-20250929', weight: 55, outputMedian: 420, outputSigma: 1.0, ttftMedianMs: 900, tokensPerSecond: 70 },
  { name: 'claude-haiku-4-5-20251001', weight: 25, outputMedian: 260, outputSigma: 0.9, ttftMedianMs: 380, tokensPerSecond: 140 },
  { name: 'claude-opus-4-1-20250805', weight: 12, outputMedian: 650, outputSigma: 1.1, ttftMedianMs: 1800, tokensPerSecond: 35 },
  { name: 'claude-3-5-haiku-20241022', weight: 8, outputMedian: 200, outputSigma: 0.8, ttftMedianMs: 420, tokensPerSecond: 110 },
];

export interface GatewayModel extends ModelProfile {
  provider: string;
  /** USD per million input and output tokens (what LiteLLM's spend is computed from). */
  input: number;
  output: number;
  callType: string;
}

/** The models behind a LiteLLM gateway. */
export const GATEWAY_MODELS: readonly GatewayModel[] = [
  { name: 'gpt-4o', provider: 'openai', weight: 30, outputMedian: 380, outputSigma: 0.9, ttftMedianMs: 600, tokensPerSecond: 80, input: 2.5, output: 10, callType: 'acompletion' },
  { name: 'gpt-4o-mini', provider: 'openai', weight: 25, outputMedian: 300, outputSigma: 0.9, ttftMedianMs: 350, tokensPerSecond: 120, input: 0.15, output: 0.6, callType: 'acompletion' },
  { name: 'claude-sonnet-4-5', provider: 'anthropic', weight: 18, outputMedian: 420, outputSigma: 1.0, ttftMedianMs: 900, tokensPerSecond: 70, input: 3, output: 15, callType: 'acompletion' },
  { name: 'gemini-2.5-flash', provider: 'gemini', weight: 10, outputMedian: 350, outputSigma: 0.9, ttftMedianMs: 450, tokensPerSecond: 150, input: 0.3, output: 2.5, callType: 'acompletion' },
  { name: 'bedrock/anthropic.claude-3-5-haiku', provider: 'bedrock', weight: 5, outputMedian: 220, outputSigma: 0.8, ttftMedianMs: 500, tokensPerSecond: 100, input: 0.8, output: 4, callType: 'acompletion' },
  { name: 'text-embedding-3-small', provider: 'openai', weight: 12, outputMedian: 0, outputSigma: 0, ttftMedianMs: 80, tokensPerSecond: 0, input: 0.02, output: 0, callType: 'aembedding' },
];

export interface NexusTenant {
  domain: string;
  weight: number;
  account: string;
  apiKeyHash: string;
  /** Tokens of the tenant's system prompt (every request carries it). */
  systemTokens: number;
}

export interface GatewayTeam {
  team: string;
  organization: string;
  weight: number;
  keys: string[];
  users: string[];
}

export interface SidekickClient {
  id: string;
  name: string;
  slug: string;
  tier: 'adventurer' | 'champion' | 'paragon';
  weight: number;
  /**
   * How far through its quotas the client is at this point of the month, as a share of the
   * limit: some clients cross 80, 90 and 100 % (the Agents and quotas dashboard's colours).
   */
  quotaShare: number;
  agents: { id: string; slug: string; name: string; model: string; enabled: boolean; createdAt: number }[];
}

export const TIERS = [
  { tier: 'adventurer', voice: 6000, text: 1000, embedding: 10_000 },
  { tier: 'champion', voice: 30_000, text: 10_000, embedding: 100_000 },
  { tier: 'paragon', voice: 120_000, text: 50_000, embedding: 500_000 },
] as const;

export interface World {
  seed: number;
  nexus: NexusTenant[];
  teams: GatewayTeam[];
  clients: SidekickClient[];
}

const NEXUS_DOMAINS = ['acme.example.com', 'globex.example.com', 'initech.example.com', 'umbrella.example.com', 'hooli.example.com', 'stark.example.com',
  'wayne.example.com', 'wonka.example.com', 'tyrell.example.com', 'cyberdyne.example.com', 'soylent.example.com', 'localhost:3000'];
const TEAMS = ['team-search', 'team-support', 'team-growth', 'team-data', 'team-platform'];
const CLIENTS = ['Northwind Travel', 'Contoso Health', 'Fabrikam Retail', 'Adatum Legal', 'Tailspin Tutors', 'Lucerne Realty'];
const AGENT_KINDS = ['concierge', 'scheduler', 'support', 'sales', 'tutor'];
/** Where each client stands against its quotas: under 80 %, over 80, over 90, over 100. */
const QUOTA_SHARES = [0.35, 0.84, 0.93, 1.08, 0.55, 0.62];

export function buildWorld(seed: number): World {
  const rnd: Random = seeded(seed);
  const weights = zipf(NEXUS_DOMAINS.length);
  const nexus = NEXUS_DOMAINS.map((domain, i) => ({
    domain, weight: weights[i]!, account: `acc_${(i % 3) + 1}`, apiKeyHash: `cnp_live_${hex(rnd, 24)}`, systemTokens: 800 + Math.floor(rnd() * 3200),
  }));
  const teamWeights = zipf(TEAMS.length, 0.9);
  const teams = TEAMS.map((team, i) => ({
    team, organization: i < 3 ? 'org-product' : 'org-infra', weight: teamWeights[i]!,
    keys: Array.from({ length: 2 + (i % 3) }, () => hex(rnd, 64)),
    users: Array.from({ length: 3 + i * 2 }, (_, u) => `${team.replace('team-', '')}-user-${u + 1}@example.com`),
  }));
  const clientWeights = zipf(CLIENTS.length, 0.8);
  const clients = CLIENTS.map((name, c): SidekickClient => {
    const slug = name.toLowerCase().replace(/\s+/g, '-');
    return {
      id: uuid(rnd), name, slug, tier: c === 0 ? 'paragon' : c < 3 ? 'champion' : 'adventurer', weight: clientWeights[c]!, quotaShare: QUOTA_SHARES[c]!,
      agents: Array.from({ length: 2 + (c % 3) }, (_, a) => ({
        id: uuid(rnd), slug: `${slug}-${AGENT_KINDS[(c + a) % AGENT_KINDS.length]}`, name: `${name} ${AGENT_KINDS[(c + a) % AGENT_KINDS.length]}`,
        model: a % 2 === 0 ? 'gpt-4o-mini' : 'claude-haiku-4-5', enabled: a !== 3, createdAt: Date.UTC(2026, 5, 1 + c + a),
      })),
    };
  });
  return { seed, nexus, teams, clients };
}
