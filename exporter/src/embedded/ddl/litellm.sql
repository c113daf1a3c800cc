-- LiteLLM proxy source schema (fixture DDL written from ../shared/reference/source-schemas.md).
CREATE TABLE IF NOT EXISTS "LiteLLM_SpendLogs" (
  request_id TEXT PRIMARY KEY,
  call_type TEXT NOT NULL DEFAULT 'acompletion',
  api_key TEXT NOT NULL DEFAULT '',
  spend DOUBLE PRECISION NOT NULL DEFAULT 0,
  total_tokens INTEGER NOT NULL DEFAULT 0,
  prompt_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  "startTime" TIMESTAMP(3) NOT NULL,
  "endTime" TIMESTAMP(3) NOT NULL,
  "completionStartTime" TIMESTAMP(3),
  request_duration_ms INTEGER,
  model TEXT NOT NULL DEFAULT '',
  model_id TEXT DEFAULT '',
  model_group TEXT DEFAULT '',
  custom_llm_provider TEXT DEFAULT '',
  api_base TEXT DEFAULT '',
  "user" TEXT DEFAULT '',
  metadata JSONB DEFAULT '{}',
  cache_hit TEXT DEFAULT '',
  cache_key TEXT DEFAULT '',
  request_tags JSONB DEFAULT '[]',
  team_id TEXT,
  organization_id TEXT,
  end_user TEXT,
  requester_ip_address TEXT,
  messages JSONB DEFAULT '{}',
  response JSONB DEFAULT '{}',
  session_id TEXT,
  status TEXT,
  agent_id TEXT
);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_startTime_idx" ON "LiteLLM_SpendLogs"("startTime");
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_startTime_request_id_idx" ON "LiteLLM_SpendLogs"("startTime", request_id);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_end_user_idx" ON "LiteLLM_SpendLogs"(end_user);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_session_id_idx" ON "LiteLLM_SpendLogs"(session_id);
CREATE TABLE IF NOT EXISTS "LiteLLM_ErrorLogs" (
  request_id TEXT PRIMARY KEY,
  "startTime" TIMESTAMP(3) NOT NULL,
  "endTime" TIMESTAMP(3) NOT NULL,
  api_base TEXT DEFAULT '',
  model_group TEXT DEFAULT '',
  litellm_model_name TEXT DEFAULT '',
  model_id TEXT DEFAULT '',
  request_kwargs JSONB DEFAULT '{}',
  exception_type TEXT DEFAULT '',
  exception_string TEXT DEFAULT '',
  status_code TEXT DEFAULT ''
);
CREATE INDEX IF NOT EXISTS "LiteLLM_ErrorLogs_startTime_idx" ON "LiteLLM_ErrorLogs"("startTime");
