-- Sidekick Forge source schema (fixture DDL written from ../shared/reference/source-schemas.md).
CREATE TABLE IF NOT EXISTS tier_quotas (
  tier TEXT PRIMARY KEY,
  voice_seconds_per_month INTEGER NOT NULL DEFAULT 0,
  text_messages_per_month INTEGER NOT NULL DEFAULT 0,
  embedding_chunks_per_month INTEGER NOT NULL DEFAULT 0,
  uses_platform_keys BOOLEAN NOT NULL DEFAULT true
);
CREATE TABLE IF NOT EXISTS clients (
  id UUID PRIMARY KEY,
  name TEXT NOT NULL,
  tier TEXT DEFAULT 'adventurer',
  slug TEXT,
  openai_api_key TEXT,
  anthropic_api_key TEXT,
  livekit_url TEXT,
  livekit_api_key TEXT,
  livekit_api_secret TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS agents (
  id UUID PRIMARY KEY,
  client_id UUID,
  slug TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  description TEXT,
  system_prompt TEXT NOT NULL DEFAULT '',
  model TEXT,
  enabled BOOLEAN DEFAULT true,
  livekit_enabled BOOLEAN DEFAULT true,
  voice_settings JSONB,
  tools_config JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS agent_usage (
  client_id UUID NOT NULL,
  agent_id UUID NOT NULL,
  period_start DATE NOT NULL,
  voice_seconds_used INTEGER DEFAULT 0,
  voice_seconds_limit INTEGER DEFAULT 0,
  text_messages_used INTEGER DEFAULT 0,
  text_messages_limit INTEGER DEFAULT 0,
  embedding_chunks_used INTEGER DEFAULT 0,
  embedding_chunks_limit INTEGER DEFAULT 0,
  image_generation_cost NUMERIC DEFAULT 0,
  image_generation_count INTEGER DEFAULT 0,
  llm_input_tokens BIGINT NOT NULL DEFAULT 0,
  llm_output_tokens BIGINT NOT NULL DEFAULT 0,
  llm_cached_input_tokens BIGINT NOT NULL DEFAULT 0,
  tts_characters BIGINT NOT NULL DEFAULT 0,
  tts_audio_seconds NUMERIC(14,3) NOT NULL DEFAULT 0,
  stt_audio_seconds NUMERIC(14,3) NOT NULL DEFAULT 0,
  session_count INTEGER NOT NULL DEFAULT 0,
  last_session_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ DEFAULT now(),
  UNIQUE (client_id, agent_id, period_start)
);
CREATE TABLE IF NOT EXISTS conversations (
  id UUID PRIMARY KEY,
  session_id UUID,
  agent_id UUID,
  user_id UUID,
  metadata JSONB DEFAULT '{}',
  channel TEXT,
  status TEXT DEFAULT 'active',
  conversation_title TEXT,
  last_interaction_at TIMESTAMPTZ,
  duration INTEGER,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS conversation_transcripts (
  id UUID PRIMARY KEY,
  conversation_id UUID,
  session_id UUID,
  agent_id UUID,
  user_id UUID,
  role TEXT,
  content TEXT,
  transcript TEXT,
  turn_id UUID,
  sequence INTEGER,
  citations JSONB DEFAULT '[]',
  metadata JSONB DEFAULT '{}',
  source TEXT,
  -- The real table has `embeddings vector(1024)` (pgvector); tokenwatch never selects it.
  embeddings REAL[],
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_conversation_transcripts_created_at ON conversation_transcripts(created_at);
CREATE INDEX IF NOT EXISTS idx_conversation_transcripts_conversation ON conversation_transcripts(conversation_id);
