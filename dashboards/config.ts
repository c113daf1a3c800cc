// Everything alerts, recording rules and dashboards are parameterised by, in one place (the
// kubernetes-mixin `config` idea): selectors, the availability objective, thresholds, where
// alerts evaluate and where notifications go. `npm run generate` renders provisioning/ from
// `defaultConfig()`; environment variables override the parts that differ per installation.
import { z } from 'zod';

export const MonitoringConfig = z
  .object({
    /** Prometheus selector of the tokenwatch scrape job. */
    jobSelector: z.string().default('job="tokenwatch"'),
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
    /** A tenant counts as active with at least this many requests in the hour before the gap. */
    trafficStoppedMinRequests: z.number().default(10),
    ingestLagSeconds: z.number().default(300),
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

/**
 * The configuration generate uses: defaults, overridden by TOKENWATCH_ALERTS_EVALUATE,
 * TOKENWATCH_PAGER_WEBHOOK_URL, TOKENWATCH_SLACK_WEBHOOK_URL, TOKENWATCH_SLACK_CHANNEL,
 * TOKENWATCH_RUNBOOK_BASE_URL and TOKENWATCH_AVAILABILITY_OBJECTIVE.
 */
export function configFromEnvironment(env: Record<string, string | undefined> = process.env): MonitoringConfig {
  const input: Record<string, unknown> = {};
  if (env.TOKENWATCH_ALERTS_EVALUATE) input.evaluate = env.TOKENWATCH_ALERTS_EVALUATE;
  if (env.TOKENWATCH_PAGER_WEBHOOK_URL) input.pagerWebhookUrl = env.TOKENWATCH_PAGER_WEBHOOK_URL;
  if (env.TOKENWATCH_SLACK_WEBHOOK_URL) {
    input.chat = { type: 'slack', url: env.TOKENWATCH_SLACK_WEBHOOK_URL, channel: env.TOKENWATCH_SLACK_CHANNEL ?? '#llm-alerts' };
  }
  if (env.TOKENWATCH_RUNBOOK_BASE_URL) input.runbookBaseUrl = env.TOKENWATCH_RUNBOOK_BASE_URL;
  if (env.TOKENWATCH_AVAILABILITY_OBJECTIVE) input.availabilityObjective = Number(env.TOKENWATCH_AVAILABILITY_OBJECTIVE);
  return MonitoringConfig.parse(input);
}
