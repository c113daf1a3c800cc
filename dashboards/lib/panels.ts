// Panel factories: every panel gets a title, a description a new engineer understands, a
// unit, its datasource, and thresholds where a colour means something.
import type { Builder, Dataquery } from '@grafana/grafana-foundation-sdk/cog';
import { ThresholdsConfigBuilder, ThresholdsMode, type Threshold } from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelBuilder as TimeseriesBuilder } from '@grafana/grafana-foundation-sdk/timeseries';
import { PanelBuilder as StatBuilder } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as GaugeBuilder } from '@grafana/grafana-foundation-sdk/gauge';
import { PanelBuilder as TableBuilder } from '@grafana/grafana-foundation-sdk/table';
import { PanelBuilder as PieBuilder, PieChartType } from '@grafana/grafana-foundation-sdk/piechart';
import { PanelBuilder as BarGaugeBuilder } from '@grafana/grafana-foundation-sdk/bargauge';
import { PanelBuilder as BarChartBuilder } from '@grafana/grafana-foundation-sdk/barchart';
import { BarGaugeDisplayMode, ReduceDataOptionsBuilder } from '@grafana/grafana-foundation-sdk/common';
import type { DataSourceRef } from '@grafana/grafana-foundation-sdk/common';
import { CLICKHOUSE, PROMETHEUS, type ClickHouseQueryBuilder } from './grafana.ts';

type Target = Builder<Dataquery>;

interface Common {
  title: string;
  description: string;
  unit: string;
  targets: Target[];
}

function datasourceOf(targets: Target[]): DataSourceRef {
  return targets.some((t) => (t as unknown as ClickHouseQueryBuilder).build().datasource?.type === CLICKHOUSE.type) ? CLICKHOUSE : PROMETHEUS;
}

function withRefIds(targets: Target[]): Target[] {
  targets.forEach((t, i) => (t as unknown as { refId(id: string): unknown }).refId(String.fromCharCode(65 + i)));
  return targets;
}

export function steps(...values: [number | null, string][]): ThresholdsConfigBuilder {
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps(values.map(([value, color]): Threshold => ({ value, color })));
}

/** Green below 60 %, yellow 60-80 %, red above 80 % (quotas, windows). */
export const UTILISATION = () => steps([null, 'green'], [0.6, 'yellow'], [0.8, 'red']);
/** Red when a 0/1 "up" value is 0. */
export const UP = () => steps([null, 'red'], [1, 'green']);
const NEUTRAL = () => steps([null, 'blue']);

export function timeseries(p: Common & { thresholds?: ThresholdsConfigBuilder; stacked?: boolean }): TimeseriesBuilder {
  const b = new TimeseriesBuilder().title(p.title).description(p.description).unit(p.unit).datasource(datasourceOf(p.targets)).thresholds(p.thresholds ?? NEUTRAL());
  for (const t of withRefIds(p.targets)) b.withTarget(t);
  return b;
}

export function stat(p: Common & { thresholds?: ThresholdsConfigBuilder }): StatBuilder {
  const b = new StatBuilder().title(p.title).description(p.description).unit(p.unit).datasource(datasourceOf(p.targets)).thresholds(p.thresholds ?? NEUTRAL())
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
  for (const t of withRefIds(p.targets)) b.withTarget(t);
  return b;
}

export function gauge(p: Common & { thresholds: ThresholdsConfigBuilder; max?: number }): GaugeBuilder {
  const b = new GaugeBuilder().title(p.title).description(p.description).unit(p.unit).datasource(datasourceOf(p.targets)).thresholds(p.thresholds).min(0)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
  if (p.max !== undefined) b.max(p.max);
  for (const t of withRefIds(p.targets)) b.withTarget(t);
  return b;
}

export function table(p: Common & { thresholds?: ThresholdsConfigBuilder }): TableBuilder {
  const b = new TableBuilder().title(p.title).description(p.description).unit(p.unit).datasource(datasourceOf(p.targets)).thresholds(p.thresholds ?? NEUTRAL());
  for (const t of withRefIds(p.targets)) b.withTarget(t);
  return b;
}

export function pie(p: Common): PieBuilder {
  const b = new PieBuilder().title(p.title).description(p.description).unit(p.unit).datasource(datasourceOf(p.targets)).pieType(PieChartType.Donut)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
  for (const t of withRefIds(p.targets)) b.withTarget(t);
  return b;
}

export function barGauge(p: Common & { thresholds?: ThresholdsConfigBuilder }): BarGaugeBuilder {
  const b = new BarGaugeBuilder().title(p.title).description(p.description).unit(p.unit).datasource(datasourceOf(p.targets)).thresholds(p.thresholds ?? NEUTRAL())
    .displayMode(BarGaugeDisplayMode.Gradient).reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
  for (const t of withRefIds(p.targets)) b.withTarget(t);
  return b;
}

export function barChart(p: Common): BarChartBuilder {
  const b = new BarChartBuilder().title(p.title).description(p.description).unit(p.unit).datasource(datasourceOf(p.targets)).thresholds(NEUTRAL());
  for (const t of withRefIds(p.targets)) b.withTarget(t);
  return b;
}
