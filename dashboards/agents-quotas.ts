// Agents and quotas (Sidekick Forge): quota gauges, agent status, activity timeline,
// conversation analytics and usage trends.
import { CustomVariableBuilder, QueryVariableBuilder, VariableRefresh } from '@grafana/grafana-foundation-sdk/dashboard';
import { CLICKHOUSE, PROMETHEUS, ch, chMatch, layout, newDashboard, place, prom, dashboardSelector } from './lib/grafana.ts';
import { barChart, gauge, pie, stat, table, timeseries, UTILISATION } from './lib/panels.ts';
import type { MonitoringConfig } from './config.ts';

const RESOURCES = [['voice_seconds', 'Voice minutes'], ['text_messages', 'Text messages'], ['embedding_chunks', 'Embedding chunks']] as const;

export function agentsQuotas(config: MonitoringConfig) {
  const job = dashboardSelector(config);
  const dashboard = newDashboard(config, 'tokenwatch-agents-quotas', 'tokenwatch / Agents and quotas', 'Quota use per client, agent status, what happened and when, and how conversations go.', { prometheus: true, clickhouse: true })
    .withVariable(new QueryVariableBuilder('client').label('Client').datasource(PROMETHEUS).query('label_values(tokenwatch_quota_used, client)').multi(true).includeAll(true).allValue('.*').refresh(VariableRefresh.OnTimeRangeChanged))
    .withVariable(new QueryVariableBuilder('agent').label('Agent').datasource(CLICKHOUSE).query("SELECT DISTINCT agent FROM tokenwatch.conversations WHERE agent != '' ORDER BY agent").multi(true).includeAll(true).allValue('.*').refresh(VariableRefresh.OnTimeRangeChanged))
    .withVariable(new CustomVariableBuilder('event_type').label('Event type').values('conversation_started,conversation_ended,quota_threshold_crossed,agent_configuration_changed,error').multi(true).includeAll(true).allValue('.*'));
  return layout(dashboard, [
    {
      title: 'Quotas',
      panels: [
        ...RESOURCES.map(([resource, label]) => place(gauge({
          title: `${label}: quota used`, description: `Share of the monthly ${label.toLowerCase()} quota each client has used (sum over its agents). Green below 60 %, yellow 60-80 %, red above 80 %; unlimited clients are not shown.`,
          unit: 'percentunit', max: 1, thresholds: UTILISATION(), targets: [prom(`tokenwatch_quota_utilisation_ratio{${job},resource="${resource}",client=~"$client"}`, '{{client}}')],
        }), 8, 7)),
        place(table({
          title: 'Quota use this period', description: 'Usage against quota per client and resource in words ("42/100 minutes"), the utilisation, and the change against the same day of the previous period.', unit: 'short',
          thresholds: UTILISATION(),
          targets: [ch(`SELECT cur.client AS client, cur.resource AS resource,
  if(cur.resource = 'voice_seconds',
     concat(toString(round(cur.used / 60)), '/', if(cur.quota = 0, 'unlimited', toString(round(cur.quota / 60))), ' minutes'),
     concat(toString(round(cur.used)), '/', if(cur.quota = 0, 'unlimited', toString(round(cur.quota))), ' ', replaceAll(cur.resource, '_', ' '))) AS usage,
  if(cur.quota = 0, NULL, cur.used / cur.quota) AS utilisation,
  cur.used - prev.used AS change_vs_previous_period
FROM (
  SELECT client, resource, sum(used) AS used, max(quota) AS quota FROM tokenwatch.usage_daily FINAL
  WHERE agent != '' AND day = (SELECT max(day) FROM tokenwatch.usage_daily) AND ${chMatch('client', 'client')}
  GROUP BY client, resource
) AS cur
LEFT JOIN (
  SELECT client, resource, sum(used) AS used FROM tokenwatch.usage_daily FINAL
  WHERE agent != '' AND day = addMonths((SELECT max(day) FROM tokenwatch.usage_daily), -1)
  GROUP BY client, resource
) AS prev USING (client, resource)
ORDER BY utilisation DESC NULLS LAST`)],
        }).overrideByName('utilisation', [{ id: 'unit', value: 'percentunit' }, { id: 'custom.cellOptions', value: { type: 'color-background' } }]), 24, 8),
      ],
    },
    {
      title: 'Agents',
      panels: [
        place(table({
          title: 'Agent status by client', description: 'Each agent: status (offline = disabled; online = an active conversation in the last 5 minutes; idle otherwise), active conversations, last activity and voice seconds this period.', unit: 'short',
          targets: [
            prom(`max by (client, agent, status) (tokenwatch_agent_status{${job},client=~"$client"} == 1)`, '', { instant: true, format: 'table' }),
            prom(`max by (client, agent) (tokenwatch_agent_active_conversations{${job},client=~"$client"})`, '', { instant: true, format: 'table' }),
            prom(`max by (client, agent) (tokenwatch_agent_last_activity_timestamp_seconds{${job},client=~"$client"}) * 1000`, '', { instant: true, format: 'table' }),
            prom(`sum by (client, agent) (tokenwatch_quota_used{${job},client=~"$client",resource="voice_seconds",agent!=""})`, '', { instant: true, format: 'table' }),
          ],
        }).withTransformation({ id: 'merge', options: {} }), 24, 9),
      ],
    },
    {
      title: 'Activity',
      panels: [
        place(table({
          title: 'Activity timeline', description: 'What happened, newest first: conversations started and ended (value = duration in seconds), quota thresholds crossed (value = utilisation), agent configuration changes, errors. Filter by event type and agent.', unit: 'short',
          targets: [ch(`SELECT event_time, event_type, tenant, agent, conversation_id, resource, value, details
FROM tokenwatch.activity_events FINAL
WHERE $__timeFilter(event_time) AND ${chMatch('event_type', 'event_type')} AND (agent = '' OR ${chMatch('agent', 'agent')})
ORDER BY event_time DESC
LIMIT 1000`)],
        }), 24, 10),
      ],
    },
    {
      title: 'Conversation analytics',
      panels: [
        place(stat({
          title: 'Conversations', description: 'Conversations started in the time range, and in the same length of time before it.', unit: 'short',
          targets: [
            ch(`SELECT count() AS conversations FROM tokenwatch.conversations FINAL WHERE $__timeFilter(started_at) AND ${chMatch('agent', 'agent')}`),
            ch(`SELECT count() AS previous_period FROM tokenwatch.conversations FINAL
WHERE started_at >= $__fromTime - toIntervalSecond(dateDiff('second', $__fromTime, $__toTime)) AND started_at < $__fromTime AND ${chMatch('agent', 'agent')}`),
          ],
        }), 6, 6),
        place(stat({ title: 'Average duration', description: 'Average conversation duration of conversations started in the time range.', unit: 's', targets: [ch(`SELECT avg(duration_seconds) AS avg_duration FROM tokenwatch.conversations FINAL WHERE $__timeFilter(started_at) AND ${chMatch('agent', 'agent')}`)] }), 6, 6),
        place(stat({ title: 'Messages per conversation', description: 'Average number of messages per conversation with messages in the time range.', unit: 'short', targets: [ch(`SELECT count() / uniqExact(conversation_id) AS messages_per_conversation FROM tokenwatch.messages FINAL WHERE $__timeFilter(created_at) AND source = 'sidekick-forge' AND ${chMatch('agent', 'agent')}`)] }), 6, 6),
        place(pie({ title: 'Status breakdown', description: 'All conversations by status (active, archived, deleted), from the conversations table.', unit: 'short', targets: [prom(`sum by (status) (tokenwatch_conversations{${job}})`, '{{status}}', { instant: true })] }), 6, 6),
        place(pie({ title: 'Channel distribution', description: 'Conversations started in the time range by channel (voice, text, hybrid, telegram, …).', unit: 'short', targets: [ch(`SELECT channel, count() AS conversations FROM tokenwatch.conversations FINAL WHERE $__timeFilter(started_at) AND ${chMatch('agent', 'agent')} GROUP BY channel ORDER BY conversations DESC`)] }), 8),
        place(barChart({ title: 'Conversations by hour of day', description: 'Conversations started in the time range by hour of day (UTC).', unit: 'short', targets: [ch(`SELECT toString(toHour(started_at)) AS hour, count() AS conversations FROM tokenwatch.conversations FINAL WHERE $__timeFilter(started_at) AND ${chMatch('agent', 'agent')} GROUP BY hour ORDER BY toUInt8(hour)`)] }), 16),
      ],
    },
    {
      title: 'Usage trends',
      panels: [
        place(timeseries({
          title: 'Usage per day: voice, text, embeddings', description: 'Usage counters of the current period per day (last observation of each day), summed over the selected clients.', unit: 'short',
          targets: [ch(`SELECT toDateTime(day) AS time, resource, sum(used) AS used
FROM tokenwatch.usage_daily FINAL
WHERE agent != '' AND resource IN ('voice_seconds', 'text_messages', 'embedding_chunks') AND $__dateFilter(day) AND ${chMatch('client', 'client')}
GROUP BY time, resource ORDER BY time`, 'timeseries')],
        }), 24),
      ],
    },
  ]);
}
