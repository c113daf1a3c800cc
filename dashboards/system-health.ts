// System health: is tokenwatch itself reading, writing and keeping up.
import { layout, newDashboard, place, prom, dashboardSelector } from './lib/grafana.ts';
import { stat, steps, table, timeseries, UP } from './lib/panels.ts';
import type { MonitoringConfig } from './config.ts';

export function systemHealth(config: MonitoringConfig) {
  const job = dashboardSelector(config);
  const dashboard = newDashboard(config, 'tokenwatch-system-health', 'tokenwatch / System health', 'Is tokenwatch scraping, reading every source table, writing its sinks and keeping up? Start here when a data alert looks wrong.', { prometheus: true });
  return layout(dashboard, [
    {
      title: 'Exporter',
      panels: [
        place(stat({ title: 'Exporter up', description: '1 when Prometheus can scrape tokenwatch. 0 means no fresh data: every data alert is silenced.', unit: 'bool', thresholds: UP(), targets: [prom(`min(up{${job}})`, 'up')] }), 4, 5),
        place(stat({
          title: 'Ingest lag (worst stream)', description: 'Age of the newest data exported, worst stream: time since its last successful poll started. Above 5 minutes pages as TokenwatchIngestLagHigh.',
          unit: 's', thresholds: steps([null, 'green'], [60, 'yellow'], [config.ingestLagSeconds, 'red']), targets: [prom(`max(tokenwatch_ingest_lag_seconds{${job}})`, 'lag')],
        }), 5, 5),
        place(stat({ title: 'Rows read per second', description: 'Rows read from all source tables per second.', unit: 'rowsps', targets: [prom(`sum(rate(tokenwatch_source_rows_read_total{${job}}[$__rate_interval]))`, 'rows/s')] }), 5, 5),
        place(stat({
          title: 'Rows rejected (range)', description: 'Source rows skipped as invalid in the time range (negative tokens, future timestamps, missing ids). Anything above 0 means totals undercount.',
          unit: 'short', thresholds: steps([null, 'green'], [1, 'red']), targets: [prom(`sum(increase(tokenwatch_source_rows_invalid_total{${job},action="rejected"}[$__range])) or vector(0)`, 'rejected')],
        }), 5, 5),
        place(stat({ title: 'Active tenants', description: 'Tenants with a request that started in the last 5 minutes.', unit: 'short', targets: [prom(`sum(tokenwatch_active_tenants{${job}})`, 'tenants')] }), 5, 5),
      ],
    },
    {
      title: 'Sources',
      panels: [
        place(timeseries({ title: 'Rows read per second by table', description: 'Rows read from each source table.', unit: 'rowsps', targets: [prom(`sum by (source, table) (rate(tokenwatch_source_rows_read_total{${job}}[$__rate_interval]))`, '{{source}}/{{table}}')] }), 12),
        place(timeseries({ title: 'Ingest lag by table', description: 'Time since the last successful poll of each stream started. Grows when polls fail or stall.', unit: 's', thresholds: steps([null, 'green'], [config.ingestLagSeconds, 'red']), targets: [prom(`tokenwatch_ingest_lag_seconds{${job}}`, '{{source}}/{{table}}')] }), 12),
        place(timeseries({ title: 'Invalid rows by reason', description: 'Rows rejected (skipped) or repaired (kept with a field fixed), by reason. See the docs/how-rows-are-read.md, "Bad rows".', unit: 'short', targets: [prom(`sum by (source, table, reason, action) (increase(tokenwatch_source_rows_invalid_total{${job}}[$__rate_interval]))`, '{{action}} {{reason}} {{source}}/{{table}}')] }), 12),
        place(timeseries({ title: 'Poll duration by table', description: 'Duration of the last poll of each stream. A slow poll usually means a missing index (tokenwatch check) or a large maxCommitDelay.', unit: 's', targets: [prom(`tokenwatch_source_poll_duration_seconds{${job}}`, '{{source}}/{{table}}')] }), 12),
        place(table({
          title: 'Source streams',
          description: 'Per stream: up (1 when the last poll succeeded) and the checkpoint delay (now minus the checkpoint watermark, in seconds: rows older than this are final).',
          unit: 'short',
          thresholds: UP(),
          targets: [
            prom(`tokenwatch_source_up{${job}}`, 'up', { instant: true, format: 'table' }),
            prom(`time() - tokenwatch_checkpoint_watermark_timestamp_seconds{${job}}`, 'checkpoint delay', { instant: true, format: 'table' }),
          ],
        }).withTransformation({ id: 'merge', options: {} }), 12),
        place(timeseries({
          title: 'Reconciliation: source rows missing from the event store',
          description: 'At the last reconciliation of each table (hourly by default, closed days only): rows still missing after the repair (alert TokenwatchRowsMissing), and rows the repair delivered. 0 missing is the proof that the store holds every row. `tokenwatch verify` prints the days.',
          unit: 'short',
          targets: [
            prom(`tokenwatch_reconcile_missing_rows{${job}}`, 'missing {{source}}/{{table}}'),
            prom(`increase(tokenwatch_reconcile_delivered_rows_total{${job}}[$__rate_interval])`, 'delivered {{source}}/{{table}}'),
          ],
        }), 12),
        place(timeseries({ title: 'Checkpoint age', description: 'Now minus the checkpoint watermark: rows older than this are final. Equals maxCommitDelay in steady state.', unit: 's', targets: [prom(`time() - tokenwatch_checkpoint_watermark_timestamp_seconds{${job}}`, '{{source}}/{{table}}')] }), 12),
      ],
    },
    {
      title: 'Sinks and dependencies',
      panels: [
        place(timeseries({ title: 'Sink status', description: '1 when the last write to the sink (clickhouse, jsonl) succeeded. At 0 tokenwatch retries the same page: nothing is lost, but nothing moves.', unit: 'bool', thresholds: UP(), targets: [prom(`tokenwatch_sink_up{${job}}`, '{{sink}}')] }), 8),
        place(timeseries({ title: 'Dependency probes', description: '1 when the dependency answered its probe: PostgreSQL sources (SELECT 1), the ClickHouse server (/ping), configured HTTP dependencies such as LiveKit or the upstream API.', unit: 'bool', thresholds: UP(), targets: [prom(`tokenwatch_probe_up{${job}}`, '{{kind}} {{probe}}')] }), 8),
        place(timeseries({ title: 'Probe response time', description: 'Response time of each dependency probe.', unit: 's', targets: [prom(`tokenwatch_probe_duration_seconds{${job}}`, '{{kind}} {{probe}}')] }), 8),
      ],
    },
  ]);
}
