// Small helpers over @grafana/grafana-foundation-sdk shared by every dashboard: datasource
// references, the ClickHouse query type (the SDK has no ClickHouse module), and a layout that
// places panels row by row with stable ids, so a dashboard module is a list of panels.
import type { Builder, Dataquery } from '@grafana/grafana-foundation-sdk/cog';
import { DashboardBuilder, DatasourceVariableBuilder, RowBuilder, QueryVariableBuilder, VariableSort, VariableRefresh, type Panel, type RowPanel } from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder as PromQueryBuilder, PromQueryFormat } from '@grafana/grafana-foundation-sdk/prometheus';
import type { DataSourceRef } from '@grafana/grafana-foundation-sdk/common';
import { finalWithinPartitions } from './final.ts';
import { jobNameOf, type MonitoringConfig } from '../config.ts';

// Panels name their datasource through a dashboard variable, so that an imported dashboard
// works against any Prometheus and ClickHouse: the variables start on the configured uids.
export const PROMETHEUS: DataSourceRef = { type: 'prometheus', uid: '${datasource}' };
export const CLICKHOUSE: DataSourceRef = { type: 'grafana-clickhouse-datasource', uid: '${clickhouse}' };

/**
 * ClickHouse datasource target: { refId, datasource, editorType: 'sql', rawSql, format }. A
 * query that reads with FINAL gets the setting that skips partitions with nothing to merge
 * where that is exact (final.ts).
 */
export interface ClickHouseQuery extends Dataquery {
  refId?: string;
  datasource: DataSourceRef;
  editorType: 'sql';
  rawSql: string;
  /** 0 time series, 1 table, 2 logs. */
  format: 0 | 1 | 2;
  queryType: 'timeseries' | 'table' | 'logs';
}

export class ClickHouseQueryBuilder implements Builder<Dataquery> {
  private readonly query: ClickHouseQuery;
  constructor(sql: string, format: 'timeseries' | 'table' | 'logs' = 'table') {
    this.query = {
      datasource: CLICKHOUSE, editorType: 'sql', rawSql: finalWithinPartitions(sql.trim()),
      format: format === 'timeseries' ? 0 : format === 'table' ? 1 : 2, queryType: format,
      _implementsDataqueryVariant() {},
    };
  }
  refId(refId: string): this {
    this.query.refId = refId;
    return this;
  }
  build(): ClickHouseQuery {
    return this.query;
  }
}

export function prom(expr: string, legend = '', options: { instant?: boolean; refId?: string; format?: 'table' | 'time_series' } = {}): PromQueryBuilder {
  const q = new PromQueryBuilder().expr(expr).legendFormat(legend || '__auto').datasource(PROMETHEUS);
  if (options.instant) q.instant();
  if (options.format === 'table') q.format(PromQueryFormat.Table);
  if (options.refId) q.refId(options.refId);
  return q;
}

/** A ClickHouse SQL target of a built dashboard, with the dashboard and panel it belongs to. */
export interface ClickHouseTarget {
  uid: string;
  title: string;
  rawSql: string;
}

/** Every ClickHouse SQL target of a built dashboard, those of panels inside rows included: for running them outside Grafana. */
export function clickHouseTargets(built: unknown): ClickHouseTarget[] {
  interface PanelJson { title?: string; targets?: { rawSql?: unknown }[]; panels?: PanelJson[] }
  const dashboard = built as { uid: string; panels?: PanelJson[] };
  const panels = (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
  return panels.flatMap((panel) => (panel.targets ?? [])
    .filter((t): t is { rawSql: string } => typeof t.rawSql === 'string')
    .map((t) => ({ uid: dashboard.uid, title: panel.title ?? '?', rawSql: t.rawSql })));
}

export function ch(sql: string, format: 'timeseries' | 'table' | 'logs' = 'table'): ClickHouseQueryBuilder {
  return new ClickHouseQueryBuilder(sql, format);
}

/** Anything with the SDK's panel-builder surface we use. */
export interface PanelLike extends Builder<Panel> {
  gridPos(pos: { x: number; y: number; w: number; h: number }): this;
  id(id: number): this;
}

export interface Placed {
  panel: PanelLike;
  w: number;
  h: number;
}

export const place = (panel: PanelLike, w: number, h = 8): Placed => ({ panel, w, h });

/**
 * Builds a dashboard from rows of panels: rows stack vertically, panels fill each row left to
 * right and wrap at 24 columns. Ids are assigned in order (row panels too), so they stay
 * stable as long as the module's order does.
 */
export function layout(dashboard: DashboardBuilder, rows: { title: string; panels: Placed[] }[]): DashboardBuilder {
  let id = 1;
  let y = 0;
  for (const row of rows) {
    dashboard.withRow(new RowBuilder(row.title).id(id++).gridPos({ x: 0, y, w: 24, h: 1 }));
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const { panel, w, h } of row.panels) {
      if (x + w > 24) {
        y += rowHeight;
        x = 0;
        rowHeight = 0;
      }
      dashboard.withPanel(panel.id(id++).gridPos({ x, y, w, h }));
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return dashboard;
}

/** The multi-select tenant variable, from Prometheus; ClickHouse panels match it as a regex. */
export function tenantVariable(): QueryVariableBuilder {
  return new QueryVariableBuilder('tenant')
    .label('Tenant')
    .datasource(PROMETHEUS)
    .query('label_values(tokenwatch_requests_total, tenant)')
    .multi(true)
    .includeAll(true)
    .allValue('.*')
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc);
}

/** ClickHouse condition for a regex-formatted multi-value variable. */
export function chMatch(column: string, variable: string): string {
  return `match(toString(${column}), '^(\${${variable}:regex})$')`;
}

/**
 * The selector dashboards use: the configured job selector with its job matcher replaced by
 * the job variable (a selector without an exact job="…" is used as it is).
 */
export function dashboardSelector(config: MonitoringConfig): string {
  if (jobNameOf(config) === undefined) return config.jobSelector;
  return config.jobSelector.replace(/(^|,)\s*job\s*=\s*"[^"]*"/, '$1job=~"$job"');
}

/**
 * A dashboard with the variables its datasources need: `datasource` (Prometheus) and `job`
 * when it has Prometheus panels, `clickhouse` when it has ClickHouse panels.
 */
export function newDashboard(config: MonitoringConfig, uid: string, title: string, description: string, uses: { prometheus?: boolean; clickhouse?: boolean }): DashboardBuilder {
  const dashboard = new DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['tokenwatch', 'generated'])
    .editable()
    .refresh('1m')
    .time({ from: 'now-24h', to: 'now' })
    .timezone('browser');
  if (uses.prometheus) {
    dashboard.withVariable(new DatasourceVariableBuilder('datasource').label('Prometheus').type('prometheus')
      .current({ text: config.prometheusDatasourceUid, value: config.prometheusDatasourceUid }));
    const job = jobNameOf(config);
    if (job !== undefined) {
      dashboard.withVariable(new QueryVariableBuilder('job').label('Job').datasource(PROMETHEUS)
        .query('label_values(tokenwatch_build_info, job)').current({ text: job, value: job })
        .refresh(VariableRefresh.OnDashboardLoad).sort(VariableSort.AlphabeticalAsc));
    }
  }
  if (uses.clickhouse) {
    dashboard.withVariable(new DatasourceVariableBuilder('clickhouse').label('ClickHouse').type(CLICKHOUSE.type!)
      .current({ text: config.clickhouseDatasourceUid, value: config.clickhouseDatasourceUid }));
  }
  return dashboard;
}

export type { Panel, RowPanel };
