-- Claude Nexus Proxy source schema (fixture DDL written from ../shared/reference/source-schemas.md).
-- Used by the embedded demo database and by the tests; tokenwatch never creates these tables in a user's database.
CREATE TABLE IF NOT EXISTS api_requests (
  request_id UUID PRIMARY KEY,
  domain VARCHAR(255) NOT NULL,
  timestamp TIMESTAMPTZ NOT NULL,
  method VARCHAR(10) NOT NULL DEFAULT 'POST',
  path VARCHAR(255) NOT NULL DEFAULT '/v1/messages',
  headers JSONB,
  body JSONB,
  api_key_hash VARCHAR(50),
  model VARCHAR(100),
  request_type VARCHAR(50),
  response_status INTEGER,
  response_headers JSONB,
  response_body JSONB,
  response_streaming BOOLEAN DEFAULT false,
  input_tokens INTEGER DEFAULT 0,
  output_tokens INTEGER DEFAULT 0,
  total_tokens INTEGER DEFAULT 0,
  cache_creation_input_tokens INTEGER DEFAULT 0,
  cache_read_input_tokens INTEGER DEFAULT 0,
  usage_data JSONB,
  first_token_ms INTEGER,
  duration_ms INTEGER,
  error TEXT,
  tool_call_count INTEGER DEFAULT 0,
  current_message_hash CHAR(64),
  parent_message_hash CHAR(64),
  conversation_id UUID,
  branch_id VARCHAR(255) DEFAULT 'main',
  message_count INTEGER DEFAULT 0,
  parent_task_request_id UUID REFERENCES api_requests(request_id),
  is_subtask BOOLEAN DEFAULT false,
  task_tool_invocation JSONB,
  account_id VARCHAR(255),
  parent_request_id UUID REFERENCES api_requests(request_id),
  system_hash VARCHAR(64),
  created_at TIMESTAMPTZ DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_api_requests_domain ON api_requests(domain);
CREATE INDEX IF NOT EXISTS idx_api_requests_timestamp ON api_requests(timestamp);
CREATE INDEX IF NOT EXISTS idx_api_requests_model ON api_requests(model);
CREATE INDEX IF NOT EXISTS idx_api_requests_request_type ON api_requests(request_type);
CREATE INDEX IF NOT EXISTS idx_api_requests_conversation_id ON api_requests(conversation_id);
CREATE INDEX IF NOT EXISTS idx_api_requests_branch_id ON api_requests(branch_id);
CREATE INDEX IF NOT EXISTS idx_api_requests_account_id ON api_requests(account_id);
CREATE INDEX IF NOT EXISTS idx_api_requests_parent_request_id ON api_requests(parent_request_id);
CREATE INDEX IF NOT EXISTS idx_api_requests_conversation_branch ON api_requests(conversation_id, branch_id);
CREATE INDEX IF NOT EXISTS idx_api_requests_domain_timestamp ON api_requests(domain, timestamp DESC) WHERE response_body IS NOT NULL;
