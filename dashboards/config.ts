// Everything alerts, recording rules and dashboards are parameterised by, in one place (the
// kubernetes-mixin `_config` idea): selectors, datasource uids, the availability objective,
// thresholds, where alerts evaluate and where notifications go. `npm run generate` renders
// provisioning/ from the defaults, overridden by a small file (TOKENWATCH_MONITORING_CONFIG)
// and then by environment variables (docs/dashboards-and-alerts.md).
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';

export const MonitoringConfig = z
  .object({
    /**
     * Prometheus selector of the tokenwatch scrape job: what `job_name` in your scrape_configs
     * is. Rules and alerts select it; the dashboards' job variable starts on it.
     */
    jobSelector: z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*"(\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*")*$/, 'must be PromQL label matchers such as job="tokenwatch"').default('job="tokenwatch"'),
    /** Grafana datasource uids: the provisioned datasources get them, the dashboards' datasource variables start on them. */
    prometheusDatasourceUid: z.string().min(1).default('tokenwatch-prometheus'),
    clickhouseDatasourceUid: z.string().min(1).default('tokenwatch-clickhouse'),
    alertmanagerDatasourceUid: z.string().min(1).default('tokenwatch-alertmanager'),
    /** Availability objective of LLM requests (share of requests without a 5xx). */
    availabilityObjective: z.number().gt(0).lt(1).default(0.995),
    /** p95 request latency threshold in seconds, per model; `default` for the rest. */
    latencyP95Seconds: z.record(z.string(), z.number().positive()).default({ default: 30 }),
    /** p95 time-to-first-token threshold in seconds, per model; `default` for the rest. */
    ttftP95Seconds: z.record(z.string(), z.number().positive()).default({ default: 5 }),
    quotaWarningRatio: z.number().default(0.8),
    quotaCriticalRatio: z.number().default(0.9),
    quotaExceededRatio: z.number().default(1.0),
    /** Alert when an account's 5-hour output-token window reaches this share of its limit. */
    accountWindowRatio: z.number().default(0.9),
    /** Spend anomaly: hourly cost rate above this multiple of the same hour's 7-day average. */
    spendAnomalyFactor: z.number().default(3),
    /** ... and above this many USD per hour, so small tenants do not page on cents. */
    spendAnomalyMinUsdPerHour: z.number().default(1),
    /** Alert when more than this share of a source's requests (over an hour) has no price. */
    costUnknownMaxShare: z.number().min(0).max(1).default(0.01),
    /** A tenant counts as active with at least this many requests in the hour before the gap. */
    trafficStoppedMinRequests: z.number().default(10),
    ingestLagSeconds: z.number().default(300),
    /** mode: replication: alert when a slot retains more WAL on the source than this (bytes). */
    replicationRetainedMaxBytes: z.number().positive().default(1024 ** 3),
    /** ... and when its stream has received no message (a change or a keepalive) for this long. */
    replicationSilentSeconds: z.number().positive().default(300),
    /** Where alerts evaluate: Prometheus (default, routed by Alertmanager) or Grafana-managed. */
    evaluate: z.enum(['prometheus', 'grafana']).default('prometheus'),
    runbookBaseUrl: z.string().default('https://github.com/tokenwatch/tokenwatch/blob/main/docs/runbooks.md'),
    /** Rule group evaluation interval. */
    evaluationInterval: z.string().default('1m'),
    /** Replaces every alert's `for:` (end-to-end tests use "0s"; production keeps each alert's own). */
    forOverride: z.string().optional(),
    /** Notifications: critical pages, warning goes to chat, info goes nowhere. */
    pagerWebhookUrl: z.string().default('http://pager.invalid/tokenwatch'),
    chat: z
      .discriminatedUnion('type', [
        z.object({ type: z.literal('slack'), url: z.string(), channel: z.string() }),
        z.object({ type: z.literal('webhook'), url: z.string() }),
      ])
      .default({ type: 'slack', url: 'https://hooks.slack.invalid/services/REPLACE/ME', channel: '#llm-alerts' }),
    /** Alertmanager timings; tests shorten them, the shipped files keep these. */
    groupWait: z.string().default('30s'),
    groupInterval: z.string().default('5m'),
    repeatInterval: z.string().default('4h'),
  })
  .strict();
export type MonitoringConfig = z.infer<typeof MonitoringConfig>;

/** Environment variables generate reads, and the setting each overrides. */
export const MONITORING_ENVIRONMENT = {
  TOKENWATCH_MONITORING_CONFIG: 'a YAML file of settings (any field of MonitoringConfig); the variables below override it',
  TOKENWATCH_JOB_SELECTOR: 'jobSelector, e.g. job="llm-exporter"',
  TOKENWATCH_PROMETHEUS_DATASOURCE_UID: 'prometheusDatasourceUid',
  TOKENWATCH_CLICKHOUSE_DATASOURCE_UID: 'clickhouseDatasourceUid',
  TOKENWATCH_ALERTS_EVALUATE: 'evaluate (prometheus or grafana)',
  TOKENWATCH_PAGER_WEBHOOK_URL: 'pagerWebhookUrl',
  TOKENWATCH_SLACK_WEBHOOK_URL: 'chat.url (with TOKENWATCH_SLACK_CHANNEL: chat.channel)',
  TOKENWATCH_RUNBOOK_BASE_URL: 'runbookBaseUrl',
  TOKENWATCH_AVAILABILITY_OBJECTIVE: 'availabilityObjective',
} as const;

/** The configuration generate uses: defaults, then the TOKENWATCH_MONITORING_CONFIG file, then the variables. */
export function configFromEnvironment(env: Record<string, string | undefined> = process.env): MonitoringConfig {
  const input: Record<string, unknown> = {};
  if (env.TOKENWATCH_MONITORING_CONFIG) {
    const file = parse(readFileSync(env.TOKENWATCH_MONITORING_CONFIG, 'utf8')) as unknown;
    if (file !== null && (typeof file !== 'object' || Array.isArray(file))) throw new Error(`${env.TOKENWATCH_MONITORING_CONFIG}: must be a YAML mapping of settings`);
    Object.assign(input, file);
  }
  if (env.TOKENWATCH_JOB_SELECTOR) input.jobSelector = env.TOKENWATCH_JOB_SELECTOR;
  if (env.TOKENWATCH_PROMETHEUS_DATASOURCE_UID) input.prometheusDatasourceUid = env.TOKENWATCH_PROMETHEUS_DATASOURCE_UID;
  if (env.TOKENWATCH_CLICKHOUSE_DATASOURCE_UID) input.clickhouseDatasourceUid = env.TOKENWATCH_CLICKHOUSE_DATASOURCE_UID;
  if (env.TOKENWATCH_ALERTS_EVALUATE) input.evaluate = env.TOKENWATCH_ALERTS_EVALUATE;
  if (env.TOKENWATCH_PAGER_WEBHOOK_URL) input.pagerWebhookUrl = env.TOKENWATCH_PAGER_WEBHOOK_URL;
  if (env.TOKENWATCH_SLACK_WEBHOOK_URL) {
    input.chat = { type: 'slack', url: env.TOKENWATCH_SLACK_WEBHOOK_URL, channel: env.TOKENWATCH_SLACK_CHANNEL ?? '#llm-alerts' };
  }
  if (env.TOKENWATCH_RUNBOOK_BASE_URL) input.runbookBaseUrl = env.TOKENWATCH_RUNBOOK_BASE_URL;
  if (env.TOKENWATCH_AVAILABILITY_OBJECTIVE) input.availabilityObjective = Number(env.TOKENWATCH_AVAILABILITY_OBJECTIVE);
  const result = MonitoringConfig.safeParse(input);
  if (!result.success) {
    throw new Error(`monitoring configuration: ${result.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}`);
  }
  return result.data;
}

/** The job name a dashboard's job variable starts on: the value of an exact `job="…"` matcher, if the selector has one. */
export function jobNameOf(config: MonitoringConfig): string | undefined {
  return /(?:^|,)\s*job\s*=\s*"([^"]*)"/.exec(config.jobSelector)?.[1];
}

/** The labels every series the selector matches has: its exact matchers (`job="x"` gives { job: 'x' }). */
export function selectorLabels(config: MonitoringConfig): Record<string, string> {
  return Object.fromEntries([...config.jobSelector.matchAll(/(?:^|,)\s*([a-zA-Z_]\w*)\s*=\s*"([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
}
