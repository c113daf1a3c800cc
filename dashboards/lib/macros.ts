// Grafana's ClickHouse macros and dashboard variables, expanded the way the plugin expands
// them, for running dashboard queries outside Grafana (the dashboards test, the analytics
// benchmark). `values` fills `${name:sqlstring}` and `${name}`; `${name:regex}` of a
// multi-value variable set to All becomes '.*'.

/** 'YYYY-MM-DD hh:mm:ss.sss' in UTC, what toDateTime64(…, 3) parses. */
function chTime(date: Date): string {
  return date.toISOString().replace('T', ' ').slice(0, 23);
}

export function expandMacros(sql: string, options: { from: Date; to: Date; values?: Record<string, string> }): string {
  const from = chTime(options.from);
  const to = chTime(options.to);
  const values = options.values ?? {};
  const quote = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return sql
    .replace(/\$__timeFilter\((\w+)\)/g, `$1 >= toDateTime64('${from}', 3) AND $1 <= toDateTime64('${to}', 3)`)
    .replace(/\$__dateFilter\((\w+)\)/g, `$1 >= toDate('${from.slice(0, 10)}') AND $1 <= toDate('${to.slice(0, 10)}')`)
    .replaceAll('$__fromTime', `toDateTime64('${from}', 3)`)
    .replaceAll('$__toTime', `toDateTime64('${to}', 3)`)
    .replace(/\$\{(\w+):regex\}/g, (_all, name: string) => values[name] ?? '.*')
    .replace(/\$\{(\w+):sqlstring\}/g, (_all, name: string) => quote(values[name] ?? ''))
    .replace(/\$\{(\w+)\}/g, (all, name: string) => values[name] ?? all);
}
