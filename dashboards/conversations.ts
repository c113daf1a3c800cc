// Conversations (ClickHouse): a searchable list, and a thread view of one conversation reached
// by a data link from the list, with branches and sub-tasks.
import { CustomVariableBuilder, QueryVariableBuilder, TextBoxVariableBuilder, VariableRefresh } from '@grafana/grafana-foundation-sdk/dashboard';
import type { MonitoringConfig } from './config.ts';
import { CLICKHOUSE, ch, layout, newDashboard, place, tenantVariable } from './lib/grafana.ts';
import { table } from './lib/panels.ts';

export const THREAD_UID = 'tokenwatch-conversation-thread';

export function conversationList(config: MonitoringConfig) {
  const dashboard = newDashboard(config, 'tokenwatch-conversations', 'tokenwatch / Conversations', 'Find conversations by tenant, time, model, user or text, and open one as a thread.', { prometheus: true, clickhouse: true })
    .withVariable(tenantVariable())
    .withVariable(new QueryVariableBuilder('model').label('Model').datasource(CLICKHOUSE).query("SELECT DISTINCT model FROM tokenwatch.requests WHERE model != '' ORDER BY model").multi(true).includeAll(true).allValue('.*').refresh(VariableRefresh.OnTimeRangeChanged))
    .withVariable(new TextBoxVariableBuilder('user').label('User (exact)'))
    .withVariable(new TextBoxVariableBuilder('search').label('Search text'));
  const list = table({
    title: 'Conversations', description: 'Conversations with activity in the time range, newest first: messages, requests, tokens and cost. Click a conversation id to open its thread.', unit: 'short',
    targets: [ch(`SELECT m.conversation_id AS conversation_id, m.first_tenant AS tenant, m.first_agent AS agent, m.first_user AS user, m.messages AS messages,
  r.requests AS requests, r.tokens AS tokens, r.cost_usd AS cost_usd, arrayStringConcat(r.models, ', ') AS models, m.last_activity AS last_activity
FROM (
  SELECT conversation_id, any(tenant) AS first_tenant, any(agent) AS first_agent, any(user) AS first_user, count() AS messages, max(created_at) AS last_activity
  FROM tokenwatch.messages FINAL
  WHERE $__timeFilter(created_at) AND match(tenant, '^(\${tenant:regex})$')
    AND (\${user:sqlstring} = '' OR user = \${user:sqlstring})
    AND (\${search:sqlstring} = '' OR conversation_id IN (SELECT conversation_id FROM tokenwatch.messages WHERE positionCaseInsensitive(content, \${search:sqlstring}) > 0))
  GROUP BY conversation_id
) AS m
LEFT JOIN (
  SELECT conversation_id, count() AS requests, sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens) AS tokens,
    sum(cost_usd) AS cost_usd, groupUniqArray(model) AS models
  FROM tokenwatch.requests FINAL
  WHERE conversation_id != '' AND $__timeFilter(started_at)
  GROUP BY conversation_id
) AS r USING (conversation_id)
WHERE '\${model:regex}' = '.*' OR arrayExists(x -> match(x, '^(\${model:regex})$'), r.models)
ORDER BY last_activity DESC
LIMIT 500`)],
  }).overrideByName('conversation_id', [{ id: 'links', value: [{ title: 'Open the thread', url: `/d/${THREAD_UID}?var-conversation=\${__value.raw}&\${__url_time_range}` }] }])
    .overrideByName('cost_usd', [{ id: 'unit', value: 'currencyUSD' }]);
  return layout(dashboard, [{ title: 'Conversations', panels: [place(list, 24, 18)] }]);
}

export function conversationThread(config: MonitoringConfig) {
  const dashboard = newDashboard(config, THREAD_UID, 'tokenwatch / Conversation thread', 'One conversation message by message, with the requests that carried it, their branches and sub-tasks.', { clickhouse: true })
    .time({ from: 'now-30d', to: 'now' })
    .withVariable(new TextBoxVariableBuilder('conversation').label('Conversation id'))
    .withVariable(new CustomVariableBuilder('content_limit').label('Characters per message').values('2000,500,10000').current({ text: '2000', value: '2000' }));
  return layout(dashboard, [
    {
      title: 'Thread',
      panels: [
        place(table({
          title: 'Messages', description: 'Every message of the conversation in order: role, content (as stored: redacted unless clickhouse.content is full), and the tokens and timing of the request that carried it.', unit: 'short',
          targets: [ch(`SELECT m.created_at AS time, m.sequence AS sequence, m.role AS role, substring(m.content, 1, \${content_limit}) AS content, m.agent AS agent, m.channel AS channel,
  r.model AS model, r.input_tokens AS input_tokens, r.output_tokens AS output_tokens, r.duration_ms AS duration_ms, r.ttft_ms AS ttft_ms
FROM tokenwatch.messages AS m FINAL
LEFT JOIN (SELECT request_id, model, input_tokens, output_tokens, duration_ms, ttft_ms FROM tokenwatch.requests FINAL WHERE conversation_id = \${conversation:sqlstring}) AS r
  ON r.request_id = m.request_id
WHERE m.conversation_id = \${conversation:sqlstring}
ORDER BY m.created_at, m.sequence`)],
        }).overrideByName('duration_ms', [{ id: 'unit', value: 'ms' }]).overrideByName('ttft_ms', [{ id: 'unit', value: 'ms' }]), 24, 14),
      ],
    },
    {
      title: 'Branches and sub-tasks',
      panels: [
        place(table({
          title: 'Requests of the conversation', description: 'The requests of the conversation with their branch (main, branch_*, compact_*, subtask_N) and, for sub-tasks, the request whose Task tool call spawned them.', unit: 'short',
          targets: [ch(`SELECT started_at, request_id, branch_id, is_subtask, parent_task_request_id, model, input_tokens, output_tokens, cost_usd, error_type
FROM tokenwatch.requests FINAL
WHERE conversation_id = \${conversation:sqlstring}
ORDER BY started_at`)],
        }), 24, 10),
      ],
    },
  ]);
}
