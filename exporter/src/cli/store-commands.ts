// Commands on the ClickHouse event store: migrate, query, export conversations, report usage.
// With the embedded store, only one process can open it; while `tokenwatch run` holds it,
// these commands send their read-only query to the running instance over loopback instead.
import { loadOrExit, UsageError, type CommonOptions } from './load-or-exit.ts';
import { openEventStore } from './runtime.ts';
import { StoreLocked, type EventStore } from '../store/clickhouse.ts';
import type { Config } from '../config/schema.ts';
import { readOnlyQueryProblem } from '../store/read-only.ts';

export type OutputFormat = 'table' | 'csv' | 'json';

function csvCell(value: unknown): string {
  const text = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function formatRows(rows: Record<string, unknown>[], format: OutputFormat, columns?: string[]): string {
  const names = columns ?? (rows.length > 0 ? Object.keys(rows[0]!) : []);
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (format === 'csv') return [names.map(csvCell).join(','), ...rows.map((r) => names.map((n) => csvCell(r[n])).join(','))].join('\n') + '\n';
  const cells = rows.map((r) => names.map((n) => (r[n] === null || r[n] === undefined ? '' : typeof r[n] === 'object' ? JSON.stringify(r[n]) : String(r[n]))));
  const widths = names.map((n, i) => Math.min(60, Math.max(n.length, ...cells.map((c) => c[i]!.length))));
  const line = (values: string[]) => values.map((v, i) => (v.length > widths[i]! ? `${v.slice(0, widths[i]! - 1)}…` : v.padEnd(widths[i]!))).join('  ');
  return [line(names), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line), `(${rows.length} row${rows.length === 1 ? '' : 's'})`].join('\n') + '\n';
}

/** Runs a read-only query on the store, or on the running instance when it holds the embedded store. */
async function readQuery(config: Config, store: EventStore | undefined, sql: string, params: Record<string, unknown>): Promise<Record<string, unknown>[]> {
  if (store) return store.query<Record<string, unknown>>(sql, params);
  const [host, port] = [config.server.listenAddress.slice(0, config.server.listenAddress.lastIndexOf(':')), config.server.listenAddress.slice(config.server.listenAddress.lastIndexOf(':') + 1)];
  const target = `http://${host === '' || host === '0.0.0.0' ? '127.0.0.1' : host}:${port}/api/v1/query`;
  let response: Response;
  try {
    response = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql, params }) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`the embedded store is in use by a running tokenwatch, so this command asks it over HTTP, but ${target} did not answer (${cause?.code ?? cause?.message ?? (error as Error).message}): set server.listenAddress (TOKENWATCH_LISTEN_ADDRESS, --config) to the address that tokenwatch run serves on`, { cause: error });
  }
  const body = (await response.json()) as { rows?: Record<string, unknown>[]; error?: string };
  if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
  return body.rows ?? [];
}

async function withStore<T>(options: CommonOptions, action: (config: Config, store: EventStore | undefined) => Promise<T>): Promise<T> {
  const { loaded, logger } = loadOrExit(options);
  let store: EventStore | undefined;
  try {
    store = await openEventStore(loaded.config, logger, { migrate: loaded.config.clickhouse.migrateOnStart });
    if (!store) throw new Error('the ClickHouse store is disabled or unavailable (clickhouse.enabled, CLICKHOUSE_URL, chdb)');
  } catch (error) {
    // The embedded store is locked by a running `tokenwatch run`: ask it instead.
    if (!(error instanceof StoreLocked)) throw error;
    logger.debug('embedded store in use by a running tokenwatch; querying it over loopback');
    store = undefined;
  }
  try {
    return await action(loaded.config, store);
  } finally {
    await store?.close();
  }
}

export async function migrateCommand(options: CommonOptions): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  const store = await openEventStore(loaded.config, logger, { migrate: false });
  if (!store) throw new Error('the ClickHouse store is disabled or unavailable (clickhouse.enabled, CLICKHOUSE_URL, chdb)');
  try {
    const applied = await store.migrate();
    process.stdout.write(applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'schema up to date\n');
  } finally {
    await store.close();
  }
}

export async function queryCommand(sql: string, options: CommonOptions & { format: OutputFormat }): Promise<void> {
  const problem = readOnlyQueryProblem(sql);
  if (problem !== undefined) throw new UsageError(problem);
  await withStore(options, async (config, store) => {
    process.stdout.write(formatRows(await readQuery(config, store, sql, {}), options.format));
  });
}

/** A --from/--to value as ClickHouse will read it, or a UsageError naming the flag. */
function timeFlag(flag: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new UsageError(`${flag} ${value} is not a time: use a date or a time such as 2026-11-01 or 2026-11-01T12:00:00Z`);
  }
  return value;
}

export async function exportConversationsCommand(options: CommonOptions & { tenant?: string; from?: string; to?: string; format: 'csv' | 'json' }): Promise<void> {
  const from = timeFlag('--from', options.from, '1970-01-01');
  const to = timeFlag('--to', options.to, '2999-01-01');
  if (Date.parse(from) >= Date.parse(to)) throw new UsageError(`--from ${from} is not before --to ${to}: nothing could match`);
  await withStore(options, async (config, store) => {
    const db = config.clickhouse.database;
    const rows = await readQuery(config, store,
      `SELECT tenant, conversation_id, message_id, sequence, role, channel, agent, user, request_id, created_at, content
       FROM ${db}.messages FINAL
       WHERE ({tenant:String} = '' OR tenant = {tenant:String})
         AND created_at >= parseDateTime64BestEffort({from:String}, 3, 'UTC') AND created_at < parseDateTime64BestEffort({to:String}, 3, 'UTC')
       ORDER BY tenant, conversation_id, created_at, message_id`,
      { tenant: options.tenant ?? '', from, to });
    process.stdout.write(formatRows(rows, options.format, ['tenant', 'conversation_id', 'message_id', 'sequence', 'role', 'channel', 'agent', 'user', 'request_id', 'created_at', 'content']));
  });
}

export const REPORT_DIMENSIONS = ['tenant', 'model', 'source', 'provider', 'account', 'operation'] as const;

export async function reportUsageCommand(options: CommonOptions & { month: string; by: string; format: 'csv' | 'json' | 'table' }): Promise<void> {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(options.month)) throw new Error(`--month must be YYYY-MM, got "${options.month}"`);
  const by = options.by.split(',').map((d) => d.trim()).filter(Boolean);
  for (const d of by) if (!(REPORT_DIMENSIONS as readonly string[]).includes(d)) throw new Error(`--by: unknown dimension "${d}"; use ${REPORT_DIMENSIONS.join(', ')}`);
  await withStore(options, async (config, store) => {
    const db = config.clickhouse.database;
    const groups = by.length > 0 ? by.join(', ') : "'all'";
    const rows = await readQuery(config, store,
      `SELECT ${by.length > 0 ? `${groups},` : ''} count() AS requests, countIf(error_type != '') AS errors,
         sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cache_read_tokens) AS cache_read_tokens,
         sum(cache_write_tokens) AS cache_write_tokens, toString(sum(cost_usd)) AS cost_usd, countIf(NOT cost_known) AS requests_without_price
       FROM ${db}.requests FINAL
       WHERE toStartOfMonth(started_at) = toDate({month:String})
       ${by.length > 0 ? `GROUP BY ${groups} ORDER BY ${groups}` : ''}`,
      { month: `${options.month}-01` });
    process.stdout.write(formatRows(rows, options.format));
  });
}
