-- Claude Nexus Proxy, schema version 0: api_requests as the proxy's first migration creates it
-- (Moonsong-Labs/claude-nexus-proxy, scripts/db/migrations/000-init-database.ts), before
-- conversation tracking (001), subtasks (003), account ids (005), message hashes (006) and
-- parent request ids (007) added their columns. A named variant with its own test
-- (claude-nexus-proxy-v0.test.ts); tokenwatch never creates these tables in a user's database.
CREATE TABLE IF NOT EXISTS api_requests (
  request_id UUID PRIMARY KEY,
  timestamp TIMESTAMPTZ NOT NULL,
  domain VARCHAR(255) NOT NULL,
  method VARCHAR(10) NOT NULL,
  path VARCHAR(1024) NOT NULL,
  headers JSONB NOT NULL,
  body JSONB,
  request_type VARCHAR(50),
  api_key_id VARCHAR(50),
  model VARCHAR(100),
  ip_address VARCHAR(45),
  response_status INTEGER,
  response_headers JSONB,
  response_body JSONB,
  response_streaming BOOLEAN DEFAULT FALSE,
  duration_ms INTEGER,
  input_tokens INTEGER,
  output_tokens INTEGER,
  cache_creation_input_tokens INTEGER DEFAULT 0,
  cache_read_input_tokens INTEGER DEFAULT 0,
  usage_data JSONB,
  tool_call_count INTEGER DEFAULT 0,
  error TEXT,
  completed_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_api_requests_domain ON api_requests(domain);
CREATE INDEX IF NOT EXISTS idx_api_requests_timestamp ON api_requests(timestamp);
CREATE INDEX IF NOT EXISTS idx_api_requests_model ON api_requests(model);
CREATE INDEX IF NOT EXISTS idx_api_requests_request_type ON api_requests(request_type);
