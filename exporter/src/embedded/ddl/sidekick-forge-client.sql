-- Sidekick Forge: the database of one dedicated (champion or paragon) client, as the platform
-- provisions it (lhyphendixon/sidekick-forge, app/services/schema_sync.py: the base schema,
-- then the conversation and RAG patches). Only the tables tokenwatch reads; written for
-- tokenwatch's tests from that file. Every row here belongs to that one client: the database
-- is the attribution.
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

CREATE TABLE IF NOT EXISTS conversation_transcripts (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  conversation_id UUID,
  session_id UUID,
  agent_id UUID,
  user_id UUID,
  role TEXT,
  content TEXT,
  transcript TEXT,
  turn_id UUID DEFAULT gen_random_uuid(),
  citations JSONB DEFAULT '[]',
  metadata JSONB DEFAULT '{}',
  source TEXT,
  -- vector(1024) (pgvector) in the real table; never read.
  embeddings REAL[],
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  sequence INTEGER,
  user_message TEXT,
  assistant_message TEXT
);

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
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
