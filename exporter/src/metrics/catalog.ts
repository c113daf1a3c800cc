// The metric catalog: every metric tokenwatch exposes is declared here once, with its
// Prometheus name, type, unit, labels and meaning. Recording code, the /metrics output, the
// docs/metrics.md table and the tests all read these declarations; a test checks that the table
// and the live /metrics agree with this list.

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDef {
  /** Name as exposed to Prometheus (base unit in the name, counters end in _total). */
  name: string;
  /** OpenTelemetry name used for OTLP push, where a semantic convention defines one. */
  otelName?: string;
  type: MetricType;
  unit: string;
  help: string;
  labels: readonly string[];
  buckets?: readonly number[];
  /** Where the value comes from, for docs/metrics.md. */
  source: string;
}

// Bucket boundaries recommended by the OpenTelemetry GenAI semantic conventions.
export const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] as const;
export const DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] as const;
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0] as const;

const GENAI = ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'tenant'] as const;
const REQUEST = ['source', 'tenant', 'model'] as const;

export const METRICS = {
  // ---- request events (durable counters: restored from checkpoints after a restart) ----
  tokenUsage: {
    name: 'gen_ai_client_token_usage', otelName: 'gen_ai.client.token.usage', type: 'histogram', unit: '{token}',
    help: 'Tokens per request by type (input, output), OpenTelemetry GenAI semantic conventions.',
    labels: [...GENAI, 'gen_ai_token_type'], buckets: TOKEN_BUCKETS, source: 'request rows',
  },
  operationDuration: {
    name: 'gen_ai_client_operation_duration_seconds', otelName: 'gen_ai.client.operation.duration', type: 'histogram', unit: 's',
    help: 'Request duration as seen by the proxy; error_type is empty for successful requests.',
    labels: [...GENAI, 'error_type'], buckets: DURATION_BUCKETS, source: 'request rows (duration_ms, request_duration_ms, endTime - startTime)',
  },
  timeToFirstToken: {
    name: 'gen_ai_server_time_to_first_token_seconds', otelName: 'gen_ai.server.time_to_first_token', type: 'histogram', unit: 's',
    help: 'Time from request start to the first response token (streaming requests).',
    labels: GENAI, buckets: TTFT_BUCKETS, source: 'request rows (first_token_ms, completionStartTime - startTime)',
  },
  requests: {
    name: 'tokenwatch_requests_total', type: 'counter', unit: '{request}',
    help: 'LLM requests by HTTP status class (2xx, 4xx, 5xx, unknown).',
    labels: [...REQUEST, 'status_class'], source: 'request rows',
  },
  tokens: {
    name: 'tokenwatch_tokens_total', type: 'counter', unit: '{token}',
    help: 'Tokens by type: input, output, cache_read, cache_creation.',
    labels: [...REQUEST, 'type'], source: 'request rows',
  },
  cost: {
    name: 'tokenwatch_cost_usd_total', type: 'counter', unit: 'USD',
    help: 'Cost in US dollars: the spend the source recorded (LiteLLM), or estimated from the usage with the price catalog at each request\'s time.',
    labels: REQUEST, source: 'request rows + price catalog',
  },
  costEstimate: {
    name: 'tokenwatch_cost_estimate_usd_total', type: 'counter', unit: 'USD',
    help: 'Cost in US dollars at list prices from the price catalog (or the configured pricing overrides): equal to tokenwatch_cost_usd_total where the source records no spend; beside LiteLLM\'s recorded spend, where they disagree.',
    labels: REQUEST, source: 'request rows + price catalog',
  },
  costUnknown: {
    name: 'tokenwatch_cost_unknown_requests_total', type: 'counter', unit: '{request}',
    help: 'Requests whose model has no price in the price catalog nor in the configured overrides: their estimated cost is unknown and left out of the cost panels (LiteLLM\'s recorded spend still counts).',
    labels: REQUEST, source: 'request rows + price catalog',
  },
  errors: {
    name: 'tokenwatch_errors_total', type: 'counter', unit: '{request}',
    help: 'Failed requests by error type (e.g. rate_limit_error, overloaded_error, http_500).',
    labels: [...REQUEST, 'error_type'], source: 'request rows',
  },
  subtaskRequests: {
    name: 'tokenwatch_subtask_requests_total', type: 'counter', unit: '{request}',
    help: 'Requests made by sub-tasks (spawned by a Task tool call).',
    labels: ['source', 'tenant'], source: 'api_requests.is_subtask',
  },
  toolCalls: {
    name: 'tokenwatch_tool_calls_total', type: 'counter', unit: '{call}',
    help: 'Tool calls made in responses.',
    labels: REQUEST, source: 'api_requests.tool_call_count',
  },
  rateLimitWarnings: {
    name: 'tokenwatch_rate_limit_warnings_total', type: 'counter', unit: '{request}',
    help: 'Requests whose upstream rate-limit status was not "allowed" (e.g. allowed_warning, rejected).',
    labels: ['source', 'tenant', 'account', 'status'], source: 'anthropic-ratelimit-unified-status response header',
  },
  messages: {
    name: 'tokenwatch_conversation_messages_total', type: 'counter', unit: '{message}',
    help: 'Conversation messages by role.',
    labels: ['source', 'tenant', 'role'], source: 'conversation_transcripts; request/response turns of api_requests',
  },
  conversationsStarted: {
    name: 'tokenwatch_conversations_started_total', type: 'counter', unit: '{conversation}',
    help: 'Conversations started, by channel.',
    labels: ['source', 'tenant', 'channel'], source: 'conversations (Sidekick Forge)',
  },
  activities: {
    name: 'tokenwatch_activities_total', type: 'counter', unit: '{activity}',
    help: 'Platform activities by type and status: agent configuration changes, knowledge-base documents, abilities run, voice sessions started and finished, failed LLM calls from an error log.',
    labels: ['source', 'tenant', 'type', 'status'], source: 'activity_log, livekit_events (Sidekick Forge); LiteLLM_ErrorLogs',
  },
  voiceSessionSeconds: {
    name: 'tokenwatch_voice_session_seconds_total', type: 'counter', unit: 's',
    help: 'Duration of finished voice sessions.',
    labels: ['source', 'tenant'], source: 'livekit_events room_finished duration (Sidekick Forge)',
  },
  // ---- snapshots of tables updated in place (recomputed on every snapshot read) ----
  quotaUsed: {
    name: 'tokenwatch_quota_used', type: 'gauge', unit: '1',
    help: 'Usage of a resource in the current period, per client (agent="" is the client total, which quotas are enforced on).',
    labels: ['source', 'client', 'agent', 'resource'], source: 'agent_usage',
  },
  quotaLimit: {
    name: 'tokenwatch_quota_limit', type: 'gauge', unit: '1',
    help: 'Quota of a resource per client for the current period (absent: unlimited).',
    labels: ['source', 'client', 'resource'], source: 'agent_usage limits, else tier_quotas',
  },
  quotaUtilisation: {
    name: 'tokenwatch_quota_utilisation_ratio', type: 'gauge', unit: '1',
    help: 'Client usage divided by its quota (0-1, above 1 when exceeded); absent for unlimited resources.',
    labels: ['source', 'client', 'resource'], source: 'agent_usage, tier_quotas',
  },
  accountWindowTokens: {
    name: 'tokenwatch_account_output_tokens_5h', type: 'gauge', unit: '{token}',
    help: 'Output tokens of an upstream account in the rolling 5-hour window.',
    labels: ['source', 'account'], source: 'api_requests (SUM over the last 5 hours, on the timestamp index)',
  },
  accountWindowLimit: {
    name: 'tokenwatch_account_output_tokens_5h_limit', type: 'gauge', unit: '{token}',
    help: 'Output-token limit of the rolling 5-hour window (configuration: metrics.accountWindowLimit).',
    labels: ['source', 'account'], source: 'configuration',
  },
  agentStatus: {
    name: 'tokenwatch_agent_status', type: 'gauge', unit: '1',
    help: '1 for the agent\'s current status (online, idle, offline), 0 for the others.',
    labels: ['source', 'client', 'agent', 'status'], source: 'agents, conversations',
  },
  agentActiveConversations: {
    name: 'tokenwatch_agent_active_conversations', type: 'gauge', unit: '{conversation}',
    help: 'Active conversations with activity in the last 5 minutes, per agent.',
    labels: ['source', 'client', 'agent'], source: 'conversations',
  },
  agentLastActivity: {
    name: 'tokenwatch_agent_last_activity_timestamp_seconds', type: 'gauge', unit: 's',
    help: 'Unix time of the agent\'s most recent conversation activity.',
    labels: ['source', 'client', 'agent'], source: 'conversations',
  },
  conversations: {
    name: 'tokenwatch_conversations', type: 'gauge', unit: '{conversation}',
    help: 'Conversations by channel and status (status="all" where the source records none).',
    labels: ['source', 'tenant', 'channel', 'status'], source: 'conversations',
  },
  voiceSessionsActive: {
    name: 'tokenwatch_voice_sessions_active', type: 'gauge', unit: '{session}',
    help: 'Voice sessions in progress: LiveKit rooms started in the last 24 hours and not finished.',
    labels: ['source', 'tenant'], source: 'livekit_events (Sidekick Forge)',
  },
  activeTenants: {
    name: 'tokenwatch_active_tenants', type: 'gauge', unit: '{tenant}',
    help: 'Tenants with at least one request that started in the last 5 minutes.',
    labels: ['source'], source: 'request rows read by this process',
  },
  // ---- tokenwatch itself ----
  rowsRead: {
    name: 'tokenwatch_source_rows_read_total', type: 'counter', unit: '{row}',
    help: 'Rows read from source tables (incremental rows, and rows of every snapshot read).',
    labels: ['source', 'table'], source: 'reader',
  },
  rowsInvalid: {
    name: 'tokenwatch_source_rows_invalid_total', type: 'counter', unit: '{row}',
    help: 'Rows with a problem, by reason; action="rejected" rows were skipped, action="repaired" rows flowed on with the field fixed.',
    labels: ['source', 'table', 'reason', 'action'], source: 'row mappers',
  },
  sourceUp: {
    name: 'tokenwatch_source_up', type: 'gauge', unit: '1',
    help: '1 when the last poll of the stream succeeded, 0 when it failed.',
    labels: ['source', 'table'], source: 'reader',
  },
  lastSuccess: {
    name: 'tokenwatch_source_last_success_timestamp_seconds', type: 'gauge', unit: 's',
    help: 'Unix time of the last successful poll of the stream.',
    labels: ['source', 'table'], source: 'reader',
  },
  ingestLag: {
    name: 'tokenwatch_ingest_lag_seconds', type: 'gauge', unit: 's',
    help: 'Age of the newest data exported: time since the start of the last successful poll (a poll reads everything committed when it starts).',
    labels: ['source', 'table'], source: 'reader',
  },
  pollDuration: {
    name: 'tokenwatch_source_poll_duration_seconds', type: 'gauge', unit: 's',
    help: 'Duration of the last poll of the stream.',
    labels: ['source', 'table'], source: 'reader',
  },
  checkpointWatermark: {
    name: 'tokenwatch_checkpoint_watermark_timestamp_seconds', type: 'gauge', unit: 's',
    help: 'Checkpoint position: rows with a timestamp below this are final.',
    labels: ['source', 'table'], source: 'checkpoints',
  },
  rowsLate: {
    name: 'tokenwatch_source_rows_late_total', type: 'counter', unit: '{row}',
    help: 'Rows delivered by the straggler sweep: they committed later than maxCommitDelay after their timestamp, after the polls that cover it.',
    labels: ['source', 'table'], source: 'straggler sweep',
  },
  rowsRevised: {
    name: 'tokenwatch_source_rows_revised_total', type: 'counter', unit: '{row}',
    help: 'Rows delivered again with a changed content after they were counted (updated in place at the source): the event store holds the newest version; counters added only the increase of tokens and cost.',
    labels: ['source', 'table'], source: 'reader (row versions)',
  },
  rowsIncomplete: {
    name: 'tokenwatch_source_rows_incomplete_total', type: 'counter', unit: '{row}',
    help: 'Rows of a table written in steps that were still incomplete (e.g. a proxy request without its response) when maxCommitDelay had passed: counted as they were; a later completion is a revision.',
    labels: ['source', 'table'], source: 'reader (row versions)',
  },
  rowsDeleted: {
    name: 'tokenwatch_source_rows_deleted_total', type: 'counter', unit: '{row}',
    help: 'Rows deleted at the source, seen by logical replication (mode: replication; e.g. LiteLLM\'s retention): they are not events and change no other counter; their events stay in the event store.',
    labels: ['source', 'table'], source: 'replication reader',
  },
  xminScans: {
    name: 'tokenwatch_source_xmin_scans_total', type: 'counter', unit: '{scan}',
    help: 'Scans of the table for the rows of transactions too large to keep their ids (past largeTransactionRows, mode: replication): each reads the whole table once, by xmin.',
    labels: ['source', 'table'], source: 'replication reader',
  },
  replicationLag: {
    name: 'tokenwatch_replication_slot_lag_bytes', type: 'gauge', unit: 'By',
    help: 'WAL the source has written that tokenwatch has not confirmed on its replication slot (mode: replication).',
    labels: ['source', 'slot'], source: 'replication reader',
  },
  replicationRetained: {
    name: 'tokenwatch_replication_slot_retained_bytes', type: 'gauge', unit: 'By',
    help: 'WAL the replication slot keeps on the source\'s disk: a slot that is not consumed grows it until the disk fills.',
    labels: ['source', 'slot'], source: 'replication reader',
  },
  replicationLastMessage: {
    name: 'tokenwatch_replication_last_message_timestamp_seconds', type: 'gauge', unit: 's',
    help: 'When the replication stream last received a message (a change or the server\'s keepalive).',
    labels: ['source', 'slot'], source: 'replication reader',
  },
  replicationFallback: {
    name: 'tokenwatch_replication_fallback', type: 'gauge', unit: '1',
    help: 'Whether a source in mode: replication is polled instead (1) because its slot was lost or invalidated (onSlotLost: polling): rows that commit later than maxCommitDelay are read by the sweep only, as for a polled source.',
    labels: ['source', 'slot'], source: 'replication reader',
  },
  rowsBeyondSweepWindow: {
    name: 'tokenwatch_source_rows_beyond_sweep_window_total', type: 'counter', unit: '{row}',
    help: 'Late rows whose timestamp was already older than the sweep window when the sweep found them: rows that commit later still are never read.',
    labels: ['source', 'table'], source: 'straggler sweep',
  },
  lateMaxDelay: {
    name: 'tokenwatch_source_late_row_max_delay_seconds', type: 'gauge', unit: 's',
    help: 'Largest time from a late row\'s timestamp to the sweep that delivered it, since start (an upper bound of its commit delay).',
    labels: ['source', 'table'], source: 'straggler sweep',
  },
  pollInterval: {
    name: 'tokenwatch_source_poll_interval_seconds', type: 'gauge', unit: 's',
    help: 'How often the table is read: pollInterval (snapshotInterval for snapshots), or longer while an incremental table has no index on its cursor column (tokenwatch check prints the index).',
    labels: ['source', 'table'], source: 'configuration and the source\'s indexes',
  },
  maxCommitDelay: {
    name: 'tokenwatch_source_max_commit_delay_seconds', type: 'gauge', unit: 's',
    help: 'Configured maxCommitDelay: rows that commit later than this after their timestamp are delivered by the straggler sweep, not the poll.',
    labels: ['source', 'table'], source: 'configuration',
  },
  sweepWindow: {
    name: 'tokenwatch_source_sweep_window_seconds', type: 'gauge', unit: 's',
    help: 'Configured sweepWindow: rows that commit later than this after their timestamp are missed (0: no sweep, rows later than maxCommitDelay are missed).',
    labels: ['source', 'table'], source: 'configuration',
  },
  reconcileMissing: {
    name: 'tokenwatch_reconcile_missing_rows', type: 'gauge', unit: '{row}',
    help: 'Source rows of the closed days compared that the event store lacks after the repair, at the last reconciliation (0 is the proof that nothing is missing).',
    labels: ['source', 'table'], source: 'reconciliation: source rows per day against the event store',
  },
  reconcileExtra: {
    name: 'tokenwatch_reconcile_extra_rows', type: 'gauge', unit: '{row}',
    help: 'Event-store rows of the closed days compared whose id the source no longer has (deleted at the source, e.g. by retention), at the last reconciliation.',
    labels: ['source', 'table'], source: 'reconciliation',
  },
  reconcileRejected: {
    name: 'tokenwatch_reconcile_rejected_rows', type: 'gauge', unit: '{row}',
    help: 'Source rows of the closed days compared that are not in the event store because they are rejected as invalid (counted in tokenwatch_source_rows_invalid_total when read).',
    labels: ['source', 'table'], source: 'reconciliation',
  },
  reconcileLastRun: {
    name: 'tokenwatch_reconcile_last_run_timestamp_seconds', type: 'gauge', unit: 's',
    help: 'When the table was last reconciled with the event store.',
    labels: ['source', 'table'], source: 'reconciliation',
  },
  reconcileDays: {
    name: 'tokenwatch_reconcile_days', type: 'gauge', unit: 'd',
    help: 'How many closed days the last reconciliation compared (0: none closed yet).',
    labels: ['source', 'table'], source: 'reconciliation',
  },
  rowsReconciled: {
    name: 'tokenwatch_reconcile_delivered_rows_total', type: 'counter', unit: '{row}',
    help: 'Rows reconciliation found missing from the event store and delivered (counted as late rows too).',
    labels: ['source', 'table'], source: 'reconciliation',
  },
  sinkUp: {
    name: 'tokenwatch_sink_up', type: 'gauge', unit: '1',
    help: '1 when the last write to the sink succeeded (jsonl, clickhouse).',
    labels: ['sink'], source: 'pipeline',
  },
  sinkRowsRejected: {
    name: 'tokenwatch_sink_rows_rejected_total', type: 'counter', unit: '{row}',
    help: 'Rows the sink\'s store refused (a value it cannot hold, text it cannot parse), by target table and the store\'s error name: kept in the dead_letters table, the rest of the page and the stream went on.',
    labels: ['sink', 'table', 'reason'], source: 'pipeline',
  },
  sinkFailures: {
    name: 'tokenwatch_sink_write_failures_total', type: 'counter', unit: '{write}',
    help: 'Failed writes to the sink; the page is read again on the next poll.',
    labels: ['sink'], source: 'pipeline',
  },
  probeUp: {
    name: 'tokenwatch_probe_up', type: 'gauge', unit: '1',
    help: '1 when the dependency answered its last probe.',
    labels: ['probe', 'kind'], source: 'dependency probes',
  },
  probeDuration: {
    name: 'tokenwatch_probe_duration_seconds', type: 'gauge', unit: 's',
    help: 'Response time of the last probe.',
    labels: ['probe', 'kind'], source: 'dependency probes',
  },
  seriesOverflow: {
    name: 'tokenwatch_metric_series_overflow_total', type: 'counter', unit: '{update}',
    help: 'Updates folded into label value "other" because a label or series cap was reached.',
    labels: ['metric', 'label'], source: 'cardinality guard',
  },
  labelValuesShortened: {
    name: 'tokenwatch_metric_label_values_shortened_total', type: 'counter', unit: '{update}',
    help: 'Updates whose label value was made safe: control characters replaced, or longer than 256 characters and shortened to a prefix and a hash.',
    labels: ['metric', 'label'], source: 'cardinality guard',
  },
  buildInfo: {
    name: 'tokenwatch_build_info', type: 'gauge', unit: '1',
    help: 'Always 1; the version of tokenwatch and of Node.js it runs on.',
    labels: ['version', 'nodejs_version'], source: 'process',
  },
  processCpu: {
    name: 'process_cpu_seconds_total', type: 'counter', unit: 's',
    help: 'User and system CPU time of the tokenwatch process (the embedded ClickHouse engine included).',
    labels: [], source: 'process',
  },
  processResident: {
    name: 'process_resident_memory_bytes', type: 'gauge', unit: 'By',
    help: 'Resident memory of the tokenwatch process.',
    labels: [], source: 'process',
  },
  heapUsed: {
    name: 'nodejs_heap_size_used_bytes', type: 'gauge', unit: 'By',
    help: 'V8 heap in use (live objects and garbage not yet collected); flat while RSS grows means the growth is native memory (the embedded ClickHouse engine).',
    labels: [], source: 'process',
  },
  heapTotal: {
    name: 'nodejs_heap_size_total_bytes', type: 'gauge', unit: 'By',
    help: 'V8 heap reserved by the process.',
    labels: [], source: 'process',
  },
  externalMemory: {
    name: 'nodejs_external_memory_bytes', type: 'gauge', unit: 'By',
    help: 'Memory of C++ objects bound to JavaScript objects (Buffers included), outside the V8 heap.',
    labels: [], source: 'process',
  },
  processStart: {
    name: 'process_start_time_seconds', type: 'gauge', unit: 's',
    help: 'Start time of the tokenwatch process, Unix time.',
    labels: [], source: 'process',
  },
  eventLoopDelay: {
    name: 'nodejs_eventloop_lag_p99_seconds', type: 'gauge', unit: 's',
    help: 'p99 of the Node.js event loop delay over the last 30 s window (a stalled loop delays scrapes and polls).',
    labels: [], source: 'process',
  },
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;
