-- LiteLLM proxy: the two tables tokenwatch reads, as Prisma creates them from BerriAI/litellm's
-- schema.prisma (String -> TEXT, Float -> DOUBLE PRECISION, DateTime -> TIMESTAMP(3) without
-- time zone, Json -> JSONB; NOT NULL where the field is not optional; Prisma's index names).
-- Written for tokenwatch's tests from that file.
CREATE TABLE IF NOT EXISTS "LiteLLM_SpendLogs" (
  request_id TEXT NOT NULL,
  call_type TEXT NOT NULL,
  api_key TEXT NOT NULL DEFAULT '',
  spend DOUBLE PRECISION NOT NULL DEFAULT 0.0,
  total_tokens INTEGER NOT NULL DEFAULT 0,
  prompt_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  "startTime" TIMESTAMP(3) NOT NULL,
  "endTime" TIMESTAMP(3) NOT NULL,
  request_duration_ms INTEGER,
  "completionStartTime" TIMESTAMP(3),
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
  mcp_namespaced_tool_name TEXT,
  agent_id TEXT,
  proxy_server_request JSONB DEFAULT '{}',
  CONSTRAINT "LiteLLM_SpendLogs_pkey" PRIMARY KEY (request_id)
);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_startTime_idx" ON "LiteLLM_SpendLogs" ("startTime");
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_startTime_request_id_idx" ON "LiteLLM_SpendLogs" ("startTime", request_id);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_end_user_idx" ON "LiteLLM_SpendLogs" (end_user);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_session_id_idx" ON "LiteLLM_SpendLogs" (session_id);

-- Failed calls to a deployment (the proxy's failure handler, a fresh uuid as request_id: no
-- link to the SpendLogs row of the same call). No index but the primary key.
CREATE TABLE IF NOT EXISTS "LiteLLM_ErrorLogs" (
  request_id TEXT NOT NULL,
  "startTime" TIMESTAMP(3) NOT NULL,
  "endTime" TIMESTAMP(3) NOT NULL,
  api_base TEXT NOT NULL DEFAULT '',
  model_group TEXT NOT NULL DEFAULT '',
  litellm_model_name TEXT NOT NULL DEFAULT '',
  model_id TEXT NOT NULL DEFAULT '',
  request_kwargs JSONB NOT NULL DEFAULT '{}',
  exception_type TEXT NOT NULL DEFAULT '',
  exception_string TEXT NOT NULL DEFAULT '',
  status_code TEXT NOT NULL DEFAULT '',
  CONSTRAINT "LiteLLM_ErrorLogs_pkey" PRIMARY KEY (request_id)
);
