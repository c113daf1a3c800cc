-- Sidekick Forge: the platform database, as its migrations leave it (lhyphendixon/sidekick-forge,
-- supabase/migrations/ applied in order: the platform dump 20260122191352_remote_commit.sql,
-- 20260201130000_add_livekit_events_and_activity_log.sql, 20260203100000_fix_atomic_usage_increments.sql,
-- 20260412230000_expand_agent_usage_metrics.sql). Only the tables tokenwatch reads and the
-- functions that define their numbers; written for tokenwatch's tests from those files.
--
-- The platform database holds the clients, their tiers' quotas, every client's usage counters,
-- the activity log and the LiveKit webhook events; it also hosts the agents, conversations and
-- transcripts of clients on the shared (adventurer) tier. Dedicated (champion, paragon) clients
-- keep those three tables in a database of their own (sidekick-forge-client.sql).
DO $$ BEGIN
  CREATE TYPE client_tier AS ENUM ('adventurer', 'champion', 'paragon');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE TYPE hosting_type AS ENUM ('shared', 'dedicated');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS tier_quotas (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tier VARCHAR(50) NOT NULL UNIQUE,
  voice_seconds_per_month INTEGER DEFAULT 6000,
  text_messages_per_month INTEGER DEFAULT 1000,
  embedding_chunks_per_month INTEGER DEFAULT 10000,
  max_sidekicks INTEGER DEFAULT 1,
  uses_platform_keys BOOLEAN DEFAULT true,
  can_bring_own_keys BOOLEAN DEFAULT true,
  created_at TIMESTAMPTZ DEFAULT now(),
  updated_at TIMESTAMPTZ DEFAULT now()
);

-- The real table has about forty more columns of provider keys, secrets and feature flags;
-- these are the ones tokenwatch reads and a representative set it must never read.
CREATE TABLE IF NOT EXISTS clients (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  supabase_url TEXT,
  supabase_service_role_key TEXT,
  supabase_anon_key TEXT,
  livekit_url TEXT,
  livekit_api_key TEXT,
  livekit_api_secret TEXT,
  openai_api_key TEXT,
  groq_api_key TEXT,
  deepgram_api_key TEXT,
  elevenlabs_api_key TEXT,
  cartesia_api_key TEXT,
  anthropic_api_key TEXT,
  additional_settings JSONB,
  provisioning_status TEXT DEFAULT 'queued',
  tier client_tier DEFAULT 'champion',
  hosting_type hosting_type DEFAULT 'dedicated',
  max_sidekicks INTEGER,
  tier_features JSONB DEFAULT '{}',
  owner_user_id UUID,
  owner_email TEXT,
  stripe_customer_id VARCHAR(255),
  stripe_subscription_id VARCHAR(255),
  subscription_status VARCHAR(50) DEFAULT 'none'
);
CREATE INDEX IF NOT EXISTS idx_clients_tier ON clients (tier);
CREATE INDEX IF NOT EXISTS idx_clients_hosting_type ON clients (hosting_type);

-- No client_id: an agent is tied to its client by agent_usage.client_id (and, for a dedicated
-- client, by the database it lives in).
CREATE TABLE IF NOT EXISTS agents (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  slug TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  description TEXT,
  system_prompt TEXT NOT NULL,
  agent_image TEXT,
  voice_settings JSONB DEFAULT '{}',
  webhooks JSONB DEFAULT '{}',
  tools_config JSONB,
  enabled BOOLEAN DEFAULT true,
  show_citations BOOLEAN DEFAULT true,
  rag_results_limit INTEGER DEFAULT 5,
  model TEXT,
  context_retention_minutes INTEGER DEFAULT 30,
  max_context_messages INTEGER DEFAULT 50,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  voice_chat_enabled BOOLEAN DEFAULT true,
  text_chat_enabled BOOLEAN DEFAULT true,
  video_chat_enabled BOOLEAN DEFAULT false,
  rag_config JSONB DEFAULT '{}',
  email_address TEXT
);

-- Updated in place by the increment_agent_* functions and record_agent_session_usage. The
-- *_limit columns are copies of the tier's quota made when the row is created: they go stale
-- when the client changes tier and are not the limit the platform enforces.
CREATE TABLE IF NOT EXISTS agent_usage (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  client_id UUID NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  agent_id UUID NOT NULL,
  period_start DATE NOT NULL,
  voice_seconds_used INTEGER DEFAULT 0,
  voice_seconds_limit INTEGER DEFAULT 6000,
  text_messages_used INTEGER DEFAULT 0,
  text_messages_limit INTEGER DEFAULT 1000,
  embedding_chunks_used INTEGER DEFAULT 0,
  embedding_chunks_limit INTEGER DEFAULT 10000,
  created_at TIMESTAMPTZ DEFAULT now(),
  updated_at TIMESTAMPTZ DEFAULT now(),
  llm_input_tokens BIGINT NOT NULL DEFAULT 0,
  llm_output_tokens BIGINT NOT NULL DEFAULT 0,
  llm_cached_input_tokens BIGINT NOT NULL DEFAULT 0,
  tts_characters BIGINT NOT NULL DEFAULT 0,
  tts_audio_seconds NUMERIC(14, 3) NOT NULL DEFAULT 0,
  stt_audio_seconds NUMERIC(14, 3) NOT NULL DEFAULT 0,
  session_count INTEGER NOT NULL DEFAULT 0,
  last_session_at TIMESTAMPTZ,
  UNIQUE (client_id, agent_id, period_start)
);
CREATE INDEX IF NOT EXISTS idx_agent_usage_client_period ON agent_usage (client_id, period_start);
CREATE INDEX IF NOT EXISTS idx_agent_usage_lookup ON agent_usage (client_id, agent_id, period_start);
CREATE INDEX IF NOT EXISTS idx_agent_usage_period ON agent_usage (period_start);

-- Inserted once by the agent; the application never touches updated_at afterwards.
CREATE TABLE IF NOT EXISTS conversations (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id UUID,
  agent_id UUID,
  user_id UUID,
  metadata JSONB DEFAULT '{}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  channel TEXT
);

-- Updated in place: a streamed voice reply is inserted with its first chunk and its content
-- rewritten as chunks arrive; user rows of one turn are merged by turn_id. No index but the
-- primary key (and, in the real table, an HNSW index on embeddings).
CREATE TABLE IF NOT EXISTS conversation_transcripts (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  conversation_id UUID,
  session_id UUID,
  agent_id UUID,
  user_id UUID,
  role TEXT,
  content TEXT,
  transcript TEXT,
  turn_id UUID,
  citations JSONB DEFAULT '[]',
  metadata JSONB DEFAULT '{}',
  source TEXT,
  -- vector(1024) (pgvector) in the real table; tokenwatch never reads it, and pgvector is not
  -- packaged where the tests run.
  embeddings REAL[],
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  sequence INTEGER,
  user_message TEXT,
  assistant_message TEXT
);

-- Append-only. The platform dump already had this table (without track_type and track_source,
-- which the later CREATE TABLE IF NOT EXISTS could not add); the migration added the metadata
-- indexes.
CREATE TABLE IF NOT EXISTS livekit_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  event_type VARCHAR(50) NOT NULL,
  room_name VARCHAR(255),
  room_sid VARCHAR(255),
  duration INTEGER,
  participant_sid VARCHAR(255),
  participant_identity VARCHAR(255),
  metadata JSONB DEFAULT '{}',
  created_at TIMESTAMPTZ DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_livekit_events_type ON livekit_events (event_type);
CREATE INDEX IF NOT EXISTS idx_livekit_events_room ON livekit_events (room_name);
CREATE INDEX IF NOT EXISTS idx_livekit_events_created ON livekit_events (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_livekit_events_metadata_client ON livekit_events ((metadata->>'client_id'));
CREATE INDEX IF NOT EXISTS idx_livekit_events_metadata_agent ON livekit_events ((metadata->>'agent_id'));

-- Append-only (log_activity()): agent configuration changes, knowledge-base documents,
-- abilities run, conversations started and ended.
CREATE TABLE IF NOT EXISTS activity_log (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  activity_type VARCHAR(50) NOT NULL,
  action VARCHAR(50) NOT NULL,
  client_id UUID REFERENCES clients (id) ON DELETE CASCADE,
  agent_id UUID,
  user_id UUID,
  resource_type VARCHAR(50),
  resource_id VARCHAR(255),
  resource_name VARCHAR(255),
  details JSONB DEFAULT '{}',
  status VARCHAR(20) DEFAULT 'success',
  error_message TEXT,
  created_at TIMESTAMPTZ DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_activity_log_client ON activity_log (client_id);
CREATE INDEX IF NOT EXISTS idx_activity_log_type ON activity_log (activity_type);
CREATE INDEX IF NOT EXISTS idx_activity_log_created ON activity_log (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_activity_log_agent ON activity_log (agent_id);

-- The platform's quota rule, as its functions compute it: per client and month, usage is the
-- sum over the client's agent_usage rows; the limit is the quota of the client's tier (NULL
-- tier: adventurer; no tier_quotas row: 6000 / 1000 / 10000); 0 means unlimited; percentages
-- are rounded to one decimal.
CREATE OR REPLACE FUNCTION get_client_aggregated_usage(p_client_id UUID, p_period_start DATE DEFAULT NULL)
RETURNS TABLE (
  client_id UUID, period_start DATE,
  total_voice_seconds INTEGER, total_text_messages INTEGER, total_embedding_chunks INTEGER,
  voice_limit INTEGER, text_limit INTEGER, embedding_limit INTEGER,
  voice_percent_used NUMERIC, text_percent_used NUMERIC, embedding_percent_used NUMERIC,
  agent_count INTEGER
) LANGUAGE plpgsql AS $$
DECLARE
  v_period DATE := coalesce(p_period_start, date_trunc('month', current_date)::date);
  v_tier VARCHAR(50);
  v_quota RECORD;
BEGIN
  SELECT c.tier INTO v_tier FROM clients c WHERE c.id = p_client_id;
  SELECT * INTO v_quota FROM tier_quotas q WHERE q.tier = coalesce(v_tier, 'adventurer');
  RETURN QUERY
  SELECT p_client_id, v_period,
    coalesce(sum(u.voice_seconds_used), 0)::integer,
    coalesce(sum(u.text_messages_used), 0)::integer,
    coalesce(sum(u.embedding_chunks_used), 0)::integer,
    coalesce(v_quota.voice_seconds_per_month, 6000)::integer,
    coalesce(v_quota.text_messages_per_month, 1000)::integer,
    coalesce(v_quota.embedding_chunks_per_month, 10000)::integer,
    CASE WHEN coalesce(v_quota.voice_seconds_per_month, 6000) > 0
      THEN round(coalesce(sum(u.voice_seconds_used), 0)::numeric / v_quota.voice_seconds_per_month * 100, 1) ELSE 0 END,
    CASE WHEN coalesce(v_quota.text_messages_per_month, 1000) > 0
      THEN round(coalesce(sum(u.text_messages_used), 0)::numeric / v_quota.text_messages_per_month * 100, 1) ELSE 0 END,
    CASE WHEN coalesce(v_quota.embedding_chunks_per_month, 10000) > 0
      THEN round(coalesce(sum(u.embedding_chunks_used), 0)::numeric / v_quota.embedding_chunks_per_month * 100, 1) ELSE 0 END,
    count(DISTINCT u.agent_id)::integer
  FROM agent_usage u
  WHERE u.client_id = p_client_id AND u.period_start = v_period;
END $$;

-- 'voice', 'text' or 'embedding': within quota when the limit is 0 or usage is below it.
CREATE OR REPLACE FUNCTION check_client_quota(p_client_id UUID, p_quota_type VARCHAR)
RETURNS TABLE (is_within_quota BOOLEAN, used INTEGER, quota_limit INTEGER, remaining INTEGER, percent_used NUMERIC)
LANGUAGE plpgsql AS $$
DECLARE
  u RECORD;
BEGIN
  SELECT * INTO u FROM get_client_aggregated_usage(p_client_id);
  IF p_quota_type = 'voice' THEN
    RETURN QUERY SELECT (u.voice_limit = 0 OR u.total_voice_seconds < u.voice_limit), u.total_voice_seconds, u.voice_limit,
      greatest(0, u.voice_limit - u.total_voice_seconds), u.voice_percent_used;
  ELSIF p_quota_type = 'text' THEN
    RETURN QUERY SELECT (u.text_limit = 0 OR u.total_text_messages < u.text_limit), u.total_text_messages, u.text_limit,
      greatest(0, u.text_limit - u.total_text_messages), u.text_percent_used;
  ELSIF p_quota_type = 'embedding' THEN
    RETURN QUERY SELECT (u.embedding_limit = 0 OR u.total_embedding_chunks < u.embedding_limit), u.total_embedding_chunks, u.embedding_limit,
      greatest(0, u.embedding_limit - u.total_embedding_chunks), u.embedding_percent_used;
  END IF;
END $$;

-- The agent's writers: the row of the month is created with the tier's limits copied in, then
-- incremented in place.
CREATE OR REPLACE FUNCTION ensure_agent_usage_row(p_client_id UUID, p_agent_id UUID) RETURNS DATE
LANGUAGE plpgsql AS $$
DECLARE
  v_period DATE := date_trunc('month', current_date)::date;
BEGIN
  INSERT INTO agent_usage (client_id, agent_id, period_start, voice_seconds_used, voice_seconds_limit,
    text_messages_used, text_messages_limit, embedding_chunks_used, embedding_chunks_limit)
  SELECT p_client_id, p_agent_id, v_period, 0, coalesce(q.voice_seconds_per_month, 6000),
    0, coalesce(q.text_messages_per_month, 1000), 0, coalesce(q.embedding_chunks_per_month, 10000)
  FROM clients c LEFT JOIN tier_quotas q ON q.tier = coalesce(c.tier::text, 'adventurer')
  WHERE c.id = p_client_id
  ON CONFLICT (client_id, agent_id, period_start) DO NOTHING;
  RETURN v_period;
END $$;

CREATE OR REPLACE FUNCTION increment_agent_voice_seconds(p_client_id UUID, p_agent_id UUID, p_seconds INTEGER)
RETURNS TABLE (new_used INTEGER, limit_value INTEGER, is_exceeded BOOLEAN) LANGUAGE plpgsql AS $$
DECLARE v_period DATE := ensure_agent_usage_row(p_client_id, p_agent_id); v_used INTEGER; v_limit INTEGER;
BEGIN
  UPDATE agent_usage SET voice_seconds_used = voice_seconds_used + p_seconds, updated_at = now()
  WHERE agent_usage.client_id = p_client_id AND agent_usage.agent_id = p_agent_id AND agent_usage.period_start = v_period
  RETURNING voice_seconds_used, voice_seconds_limit INTO v_used, v_limit;
  RETURN QUERY SELECT v_used, v_limit, (v_limit > 0 AND v_used >= v_limit);
END $$;

CREATE OR REPLACE FUNCTION increment_agent_text_messages(p_client_id UUID, p_agent_id UUID, p_count INTEGER DEFAULT 1)
RETURNS TABLE (new_used INTEGER, limit_value INTEGER, is_exceeded BOOLEAN) LANGUAGE plpgsql AS $$
DECLARE v_period DATE := ensure_agent_usage_row(p_client_id, p_agent_id); v_used INTEGER; v_limit INTEGER;
BEGIN
  UPDATE agent_usage SET text_messages_used = text_messages_used + p_count, updated_at = now()
  WHERE agent_usage.client_id = p_client_id AND agent_usage.agent_id = p_agent_id AND agent_usage.period_start = v_period
  RETURNING text_messages_used, text_messages_limit INTO v_used, v_limit;
  RETURN QUERY SELECT v_used, v_limit, (v_limit > 0 AND v_used >= v_limit);
END $$;

CREATE OR REPLACE FUNCTION increment_agent_embedding_chunks(p_client_id UUID, p_agent_id UUID, p_count INTEGER)
RETURNS TABLE (new_used INTEGER, limit_value INTEGER, is_exceeded BOOLEAN) LANGUAGE plpgsql AS $$
DECLARE v_period DATE := ensure_agent_usage_row(p_client_id, p_agent_id); v_used INTEGER; v_limit INTEGER;
BEGIN
  UPDATE agent_usage SET embedding_chunks_used = embedding_chunks_used + p_count, updated_at = now()
  WHERE agent_usage.client_id = p_client_id AND agent_usage.agent_id = p_agent_id AND agent_usage.period_start = v_period
  RETURNING embedding_chunks_used, embedding_chunks_limit INTO v_used, v_limit;
  RETURN QUERY SELECT v_used, v_limit, (v_limit > 0 AND v_used >= v_limit);
END $$;
