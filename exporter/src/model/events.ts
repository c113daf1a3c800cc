// The canonical event model. Every source adapter maps its rows to these types and every
// sink (metrics, ClickHouse, JSON lines) reads only these types, so adding a source never
// touches a sink and adding a sink never touches a source.
import { z } from 'zod';

/** ISO-8601 timestamp with offset, as produced by `Date.prototype.toISOString()`. */
const Timestamp = z.iso.datetime({ offset: true });
const TokenCount = z.number().int().nonnegative();

export const SourceName = z.enum(['claude-nexus-proxy', 'sidekick-forge', 'litellm']);
export type SourceName = z.infer<typeof SourceName>;

/** One LLM API call as seen by the proxy (Claude Nexus Proxy api_requests, LiteLLM spend/error logs). */
export const RequestEvent = z.object({
  kind: z.literal('request'),
  source: SourceName,
  /** Domain, project, client or team: whatever the source uses to separate its customers. */
  tenant: z.string().min(1),
  requestId: z.string().min(1),
  conversationId: z.string().nullable(),
  branchId: z.string().nullable(),
  parentRequestId: z.string().nullable(),
  /** Set on sub-task requests spawned by a `Task` tool call. */
  parentTaskRequestId: z.string().nullable(),
  isSubtask: z.boolean(),
  account: z.string().nullable(),
  user: z.string().nullable(),
  model: z.string(),
  /** OpenTelemetry `gen_ai.provider.name`: anthropic, openai, aws.bedrock, … */
  provider: z.string(),
  /** OpenTelemetry `gen_ai.operation.name`: chat, embeddings, text_completion, … */
  operation: z.string(),
  httpStatus: z.number().int().nullable(),
  /** null for a successful request; otherwise an error class such as `rate_limit_error` or `500`. */
  errorType: z.string().nullable(),
  inputTokens: TokenCount,
  outputTokens: TokenCount,
  cacheReadTokens: TokenCount,
  /** All cache writes, 5-minute and 1-hour. */
  cacheWriteTokens: TokenCount,
  /** The part of cacheWriteTokens written for one hour (priced higher). */
  cacheWrite1hTokens: TokenCount,
  /** Server tool calls billed per request (Anthropic's web search). */
  webSearchRequests: TokenCount,
  /** The provider's service tier as the usage block reports it (standard, priority, batch). */
  serviceTier: z.string().nullable(),
  /**
   * USD. The source's own recorded spend where it records one (LiteLLM), else the price
   * catalog's estimate; null when neither exists (a model without a price).
   */
  costUsd: z.number().nonnegative().nullable(),
  /** USD at list prices from the price catalog (or the configured overrides); null without a price. */
  costEstimateUsd: z.number().nonnegative().nullable(),
  /** Where the estimate's price came from: "catalog:<provider>/<model>" or "override:<prefix>"; null without a price. */
  pricedAs: z.string().nullable(),
  durationMs: z.number().nonnegative().nullable(),
  timeToFirstTokenMs: z.number().nonnegative().nullable(),
  toolCalls: z.number().int().nonnegative(),
  streaming: z.boolean(),
  /** Upstream rate-limit status, e.g. Anthropic's `allowed_warning`. */
  rateLimitStatus: z.string().nullable(),
  /** Request start. */
  startedAt: Timestamp,
  /** Request end (start + duration) when known. */
  endedAt: Timestamp.nullable(),
});
export type RequestEvent = z.infer<typeof RequestEvent>;

/** One message of a conversation (a transcript row, or a turn taken from a proxied request). */
export const MessageEvent = z.object({
  kind: z.literal('message'),
  source: SourceName,
  tenant: z.string().min(1),
  messageId: z.string().min(1),
  conversationId: z.string().min(1),
  role: z.string(),
  content: z.string(),
  sequence: z.number().int().nullable(),
  channel: z.string().nullable(),
  agent: z.string().nullable(),
  user: z.string().nullable(),
  /** For messages taken from proxied requests: the request that carried it. */
  requestId: z.string().nullable(),
  createdAt: Timestamp,
});
export type MessageEvent = z.infer<typeof MessageEvent>;

export const UsageResource = z.enum([
  'voice_seconds',
  'text_messages',
  'embedding_chunks',
  'llm_input_tokens',
  'llm_output_tokens',
  'llm_cached_input_tokens',
]);
export type UsageResource = z.infer<typeof UsageResource>;

/** Usage of one resource by one agent of one client in one period, read from a counter table. */
export const UsageSnapshot = z.object({
  kind: z.literal('usage'),
  source: SourceName,
  tenant: z.string().min(1),
  client: z.string(),
  agent: z.string(),
  resource: UsageResource,
  used: z.number().nonnegative(),
  /** 0 means unlimited (the Sidekick Forge convention). */
  limit: z.number().nonnegative(),
  periodStart: z.iso.date(),
  observedAt: Timestamp,
});
export type UsageSnapshot = z.infer<typeof UsageSnapshot>;

export const AgentStatus = z.enum(['online', 'idle', 'offline']);
export type AgentStatus = z.infer<typeof AgentStatus>;

export const AgentSnapshot = z.object({
  kind: z.literal('agent'),
  source: SourceName,
  tenant: z.string().min(1),
  agentId: z.string(),
  agent: z.string(),
  enabled: z.boolean(),
  status: AgentStatus,
  activeConversations: z.number().int().nonnegative(),
  lastActivityAt: Timestamp.nullable(),
  model: z.string().nullable(),
  /** Last change of the agent's configuration (agents.updated_at), when it was ever changed after creation. */
  configChangedAt: Timestamp.nullable(),
  observedAt: Timestamp,
});
export type AgentSnapshot = z.infer<typeof AgentSnapshot>;

export const ConversationSnapshot = z.object({
  kind: z.literal('conversation'),
  source: SourceName,
  tenant: z.string().min(1),
  conversationId: z.string(),
  agent: z.string().nullable(),
  user: z.string().nullable(),
  channel: z.string(),
  status: z.string(),
  startedAt: Timestamp,
  lastActivityAt: Timestamp,
  durationSeconds: z.number().nonnegative().nullable(),
  observedAt: Timestamp,
});
export type ConversationSnapshot = z.infer<typeof ConversationSnapshot>;

/** Conversations of one tenant by channel and status (an aggregate of a table updated in place). */
export const ConversationStats = z.object({
  kind: z.literal('conversation_stats'),
  source: SourceName,
  tenant: z.string().min(1),
  channel: z.string(),
  status: z.string(),
  conversations: z.number().int().nonnegative(),
  observedAt: Timestamp,
});
export type ConversationStats = z.infer<typeof ConversationStats>;

/** Output tokens of one upstream account in a rolling window (Claude Nexus Proxy's 5-hour limit). */
export const AccountWindow = z.object({
  kind: z.literal('account_window'),
  source: SourceName,
  account: z.string().min(1),
  outputTokens: z.number().int().nonnegative(),
  windowSeconds: z.number().int().positive(),
  observedAt: Timestamp,
});
export type AccountWindow = z.infer<typeof AccountWindow>;

/**
 * Activity types the event store derives itself (from conversations, agents, usage and
 * request rows) beside the activities sources log: a source's activity log is told from them
 * by type (reconciliation).
 */
export const DERIVED_ACTIVITY_TYPES = ['conversation_started', 'agent_configuration_changed', 'quota_threshold_crossed', 'error'] as const;

/**
 * Something that happened on an agent platform, from a log the platform keeps (Sidekick Forge's
 * activity_log and livekit_events, LiteLLM's error log): agent configuration changes,
 * knowledge-base documents, abilities run, voice sessions started and finished, failed calls.
 */
export const ActivityEvent = z.object({
  kind: z.literal('activity'),
  source: SourceName,
  tenant: z.string().min(1),
  /** The source row's id: an activity is stored once whatever happens to its tenant. */
  activityId: z.string().min(1),
  /** e.g. sidekick_updated, document_uploaded, ability_run, voice_session_started, voice_session_finished, llm_call_failed. */
  activityType: z.string().min(1),
  /** create, update, delete, run, start, end, … */
  action: z.string(),
  /** success, failed, pending. */
  status: z.string(),
  agent: z.string().nullable(),
  resourceType: z.string().nullable(),
  resourceName: z.string().nullable(),
  /** Seconds, for activities that last (a voice session). */
  durationSeconds: z.number().nonnegative().nullable(),
  /** A few details (never content or secrets), stored as JSON. */
  details: z.record(z.string(), z.string().or(z.number()).nullable()),
  occurredAt: Timestamp,
});
export type ActivityEvent = z.infer<typeof ActivityEvent>;

/** Voice sessions in progress now, per tenant (Sidekick Forge: LiveKit rooms started and not finished). */
export const VoiceSessions = z.object({
  kind: z.literal('voice_sessions'),
  source: SourceName,
  tenant: z.string().min(1),
  active: z.number().int().nonnegative(),
  observedAt: Timestamp,
});
export type VoiceSessions = z.infer<typeof VoiceSessions>;

export const CanonicalEvent = z.discriminatedUnion('kind', [
  RequestEvent,
  MessageEvent,
  UsageSnapshot,
  AgentSnapshot,
  ConversationSnapshot,
  ConversationStats,
  AccountWindow,
  ActivityEvent,
  VoiceSessions,
]);
export type CanonicalEvent = z.infer<typeof CanonicalEvent>;
