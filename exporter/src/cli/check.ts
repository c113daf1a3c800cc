// `tokenwatch check`: validate the configuration (exit 2 when invalid), connect to every
// source and report on one screen what tokenwatch needs: tables, columns, SELECT permission,
// an index for the incremental scan. Exit 1 when something needs fixing.
import type pg from 'pg';
import { loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { resolveDatabase } from './runtime.ts';
import { redactSecrets } from '../config/load.ts';
import { createPool, plannerRowEstimate } from '../db/postgres.ts';
import { tableGrants, grantsSql } from '../sources/grants.ts';
import { qualifiedTable, quoteIdent } from '../reader/sql.ts';
import { errorText } from '../log.ts';
import { adapterFor } from '../sources/registry.ts';
import { IncrementalReader } from '../reader/incremental-reader.ts';
import { indexStatement } from '../reader/cursor-index.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import type { Config, SourceConfig } from '../config/schema.ts';
import type { IncrementalStream, NamedSource } from '../sources/adapter.ts';
import { Pricing } from '../pricing/pricing.ts';
import { absentColumns } from '../pipeline/source-connect.ts';
import { replicationName, slotStatus, withoutReplicaIdentity } from '../reader/replication/slot.ts';
import { join } from 'node:path';
import { openStore, StoreLocked, StoreUnavailable, type EventStore } from '../store/clickhouse.ts';
import { loadMigrations } from '../store/migrations.ts';

type Line = { ok: boolean | 'warn'; text: string };

/** True when the plan of `sql` reads `table` through an index rather than a sequential scan. */
export async function usesIndex(client: pg.PoolClient | pg.Pool, sql: string, params: unknown[]): Promise<{ indexed: boolean; plan: string }> {
  const { rows } = await client.query(`EXPLAIN ${sql}`, params);
  const plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
  return { indexed: /Index (Only )?Scan|Bitmap Index Scan/.test(plan) && !/Seq Scan/.test(plan), plan };
}

export async function checkSource(source: NamedSource, pricing: Pricing, onParts?: (parts: NamedSource[]) => void): Promise<Line[]> {
  const lines: Line[] = [];
  const adapter = adapterFor(source.type);
  const pool = createPool(source.databaseUrl!, { max: 1, applicationName: 'tokenwatch-check' });
  try {
    const who = await pool.query<{ version: string; user: string }>('SELECT current_setting(\'server_version\') AS version, current_user AS user');
    lines.push({ ok: true, text: `connected as ${who.rows[0]!.user}, PostgreSQL ${who.rows[0]!.version}` });
    const tables = adapter.requiredTables(source).map((t) => source.tables[t] ?? t);
    const { rows } = await pool.query<{ name: string; readable: boolean; can_write: boolean }>(
      `SELECT c.relname AS name, has_any_column_privilege(c.oid, 'SELECT') AS readable,
         has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE') AS can_write
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY($2::text[])`,
      [source.schema, tables],
    );
    const found = new Map(rows.map((r) => [r.name, r]));
    const grants = new Map(tableGrants(source).map((g) => [g.table, g]));
    for (const table of tables) {
      const row = found.get(table);
      const qualified = `${source.schema}.${table}`;
      if (!row) {
        lines.push({ ok: false, text: `table ${qualified}: not found (rename it with tables: in the config)` });
        continue;
      }
      const grant = grants.get(table)!;
      // Column by column: a least-privilege role has SELECT on some columns only.
      const { rows: columns } = await pool.query<{ name: string; readable: boolean }>(
        `SELECT a.attname AS name, has_column_privilege(a.attrelid, a.attnum, 'SELECT') AS readable FROM pg_attribute a
         WHERE a.attrelid = $1::regclass AND a.attname = ANY($2::text[]) AND NOT a.attisdropped`,
        [qualifiedTable(source.schema, table), [...grant.columns, ...grant.secrets]],
      );
      const readable = new Map(columns.map((c) => [c.name, c.readable]));
      const missing = grant.columns.filter((c) => readable.get(c) === false);
      const secrets = grant.secrets.filter((c) => readable.get(c) === true);
      if (!row.readable || missing.length > 0) {
        const need = row.readable ? missing : grant.columns;
        lines.push({ ok: false, text: `table ${qualified}: no SELECT on column${need.length === 1 ? '' : 's'} ${need.join(', ')} (GRANT SELECT (${need.map(quoteIdent).join(', ')}) ON ${qualified} TO <tokenwatch role>; all grants: tokenwatch check --grants)` });
      } else {
        const estimate = await plannerRowEstimate(pool, qualifiedTable(source.schema, table));
        lines.push({ ok: true, text: `table ${qualified}: readable, ~${estimate} rows` });
      }
      if (secrets.length > 0) {
        lines.push({ ok: 'warn', text: `table ${qualified}: this role can also read the secret column${secrets.length === 1 ? '' : 's'} ${secrets.join(', ')}, which tokenwatch never reads; grant only the columns it needs (tokenwatch check --grants)` });
      }
    }
    const writable = rows.filter((r) => r.can_write).map((r) => r.name);
    if (writable.length > 0) {
      lines.push({ ok: 'warn', text: `this role can also write to ${writable.join(', ')}: tokenwatch needs only SELECT, prefer a read-only role` });
    }
    if (lines.some((l) => l.ok === false)) return lines;
    try {
      const parts = (await adapter.parts?.(source, pool)) ?? [];
      if (parts.length > 0) lines.push({ ok: true, text: `reads ${parts.length} more database${parts.length === 1 ? '' : 's'}: ${parts.map((p) => `${p.name} (${p.clientOf?.tenant})`).join(', ')}` });
      onParts?.(parts);
    } catch (error) {
      lines.push({ ok: false, text: errorText(error) });
      return lines;
    }
    const absent = await absentColumns(pool, source, adapter);
    if (absent.length > 0) {
      lines.push({ ok: true, text: `an older schema version: column${absent.length === 1 ? '' : 's'} ${absent.join(', ')} not present, read as empty (docs/sources.md)` });
      source = { ...source, columns: { ...source.columns, ...Object.fromEntries(absent.map((c) => [c, null])) } };
    }
    let built: ReturnType<typeof adapter.build>;
    try {
      built = adapter.build(source);
    } catch (error) {
      // A column a stream cannot do without is missing (or marked absent in the configuration).
      lines.push({ ok: false, text: errorText(error) });
      return lines;
    }
    if (source.mode === 'replication') lines.push(...(await checkReplication(pool, source, built.streams.map((st) => st.spec.table))));
    const client = await pool.connect();
    try {
      await client.query("SET TIME ZONE 'UTC'");
      const snapshot = (await client.query<{ s: string }>('SELECT txid_current_snapshot()::text AS s')).rows[0]!.s;
      for (const stream of built.streams) {
        const reader = new IncrementalReader(stream.spec, new MemoryCheckpointStore(), async () => client);
        const steady = { version: 1 as const, watermark: new Date(Date.now() - stream.spec.maxCommitDelayMs).toISOString(), snapshot, inProgress: null, rowsEmitted: 0, updatedAt: '' };
        const query = reader.pageQuery(steady, null);
        try {
          await client.query(`${query.sql.replace(/LIMIT \d+$/, 'LIMIT 0')}`, query.params);
          const { indexed } = await usesIndex(client, query.sql, query.params);
          lines.push({
            ok: indexed ? true : 'warn',
            text: indexed
              ? `stream ${stream.table}: columns selectable; polls use an index on ${stream.spec.cursorColumn}`
              : `stream ${stream.table}: columns selectable; no index used on ${stream.spec.cursorColumn}: each poll scans the table${stream.unindexedIntervalMs ? `, so it is polled every ${Math.round(stream.unindexedIntervalMs / 1000)} s instead of every ${Math.round(source.pollInterval / 1000)} s` : ''} (an index makes it cheap: ${indexStatement(stream.spec)})`,
          });
        } catch (error) {
          lines.push({ ok: false, text: `stream ${stream.table}: ${errorText(error)} (map renamed or absent columns with columns: in the config)` });
        }
      }
      for (const stream of built.streams) {
        if (stream.bulk?.models === undefined) continue;
        const line = await unpricedModels(client, stream, pricing);
        if (line) lines.push(line);
      }
      for (const query of built.snapshots) {
        try {
          await client.query(`SELECT * FROM (${query.sql}) q LIMIT 0`, query.params);
          lines.push({ ok: true, text: `snapshot ${query.table}: query runs` });
        } catch (error) {
          lines.push({ ok: false, text: `snapshot ${query.table}: ${errorText(error)} (map renamed or absent columns with columns: in the config)` });
        }
      }
    } finally {
      client.release();
    }
  } catch (error) {
    lines.push({ ok: false, text: `cannot connect: ${errorText(error)}` });
  } finally {
    await pool.end();
  }
  return lines;
}

/** What mode: replication needs of the database (docs/replication.md). */
async function checkReplication(pool: pg.Pool, source: NamedSource, tables: string[]): Promise<Line[]> {
  const lines: Line[] = [];
  const name = replicationName(source.name);
  const wal = (await pool.query<{ wal_level: string }>('SHOW wal_level')).rows[0]!.wal_level;
  lines.push(wal === 'logical'
    ? { ok: true, text: 'replication: wal_level = logical' }
    : { ok: false, text: `replication: wal_level is ${wal}; logical replication needs wal_level = logical (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL; on a managed service, its parameter)` });
  const role = (await pool.query<{ ok: boolean; name: string }>('SELECT rolreplication OR rolsuper AS ok, rolname AS name FROM pg_roles WHERE rolname = current_user')).rows[0]!;
  lines.push(role.ok
    ? { ok: true, text: `replication: role ${role.name} may replicate` }
    : { ok: false, text: `replication: role ${role.name} lacks the REPLICATION attribute (ALTER ROLE ${quoteIdent(role.name)} REPLICATION;)` });
  const unsafe = await withoutReplicaIdentity(pool, tables);
  if (unsafe.length > 0) lines.push({ ok: false, text: `replication: ${unsafe.join(', ')} has no primary key (replica identity); read this source with mode: polling` });
  const published = new Set((await pool.query<{ t: string }>("SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_publication_tables WHERE pubname = $1", [name])).rows.map((r) => r.t));
  const exists = (await pool.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name])).rowCount! > 0;
  const plain = (t: string) => t.split('.').map((p) => p.replace(/^"|"$/g, '')).join('.');
  const missing = tables.filter((t) => !published.has(plain(t)) && !published.has(t));
  if (!exists) lines.push({ ok: 'warn', text: `replication: no publication ${name}; run creates it if this role owns the tables, else as their owner: CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables.join(', ')};` });
  else if (missing.length > 0) lines.push({ ok: false, text: `replication: publication ${name} lacks ${missing.join(', ')} (ALTER PUBLICATION ${quoteIdent(name)} ADD TABLE ${missing.join(', ')};)` });
  else lines.push({ ok: true, text: `replication: publication ${name} has every table read` });
  const slot = await slotStatus(pool, name);
  lines.push(slot.exists
    ? { ok: slot.walStatus === 'lost' ? false : true, text: `replication: slot ${name} ${slot.active ? 'active' : 'inactive'}, wal_status ${slot.walStatus}, lag ${slot.lagBytes} bytes, WAL retained ${slot.retainedBytes} bytes${slot.walStatus === 'lost' ? ' (invalidated: tokenwatch replication drop, then run loads again)' : ''}` }
    : { ok: true, text: `replication: no slot ${name} yet (run creates it and loads the tables under its snapshot)` });
  return lines;
}

/** Days of a request table whose models `check` looks up in the price catalog. */
const PRICE_CHECK_DAYS = 30;

/** The models of the last PRICE_CHECK_DAYS days of a request table without a price (on the timestamp index). */
async function unpricedModels(client: pg.PoolClient, stream: IncrementalStream, pricing: Pricing): Promise<Line | undefined> {
  if (stream.bulk?.models === undefined) return undefined;
  const { model, provider } = stream.bulk.models;
  try {
    const { rows } = await client.query<{ model: string; provider: string | null; n: number }>(
      `SELECT ${model} AS model, ${provider ?? 'NULL::text'} AS provider, count(*)::int AS n FROM ${stream.spec.table} t
       WHERE t.${stream.spec.cursorColumn} >= now() - make_interval(days => ${PRICE_CHECK_DAYS}) AND ${model} IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC`,
    );
    const unpriced = rows.filter((r) => pricing.resolve(r.model, r.provider) === undefined);
    if (unpriced.length === 0) return { ok: true, text: `stream ${stream.table}: every model of the last ${PRICE_CHECK_DAYS} days has a price (${rows.length} model${rows.length === 1 ? '' : 's'}; tokenwatch pricing MODEL shows one)` };
    const requests = unpriced.reduce((n, r) => n + r.n, 0);
    return {
      ok: 'warn',
      text: `stream ${stream.table}: ${unpriced.length} model${unpriced.length === 1 ? '' : 's'} of the last ${PRICE_CHECK_DAYS} days without a price (${requests} requests, cost unknown): ${unpriced.slice(0, 10).map((r) => `${r.model} (${r.n})`).join(', ')}; give ${unpriced.length === 1 ? 'it a price' : 'them prices'} under pricing.models (docs/pricing.md)`,
    };
  } catch (error) {
    return { ok: 'warn', text: `stream ${stream.table}: could not list its models for the price check: ${errorText(error)}` };
  }
}

/** The ClickHouse store: reachable, and which migrations are applied or pending. Opens nothing for writing. */
async function checkStore(config: Config): Promise<{ title: string; lines: Line[] }> {
  if (!config.clickhouse.enabled) return { title: '(disabled: clickhouse.enabled is false)', lines: [] };
  const title = config.clickhouse.url ? redactSecrets(config.clickhouse.url) : `[embedded] ${join(config.stateDir, 'clickhouse')}`;
  let store: EventStore;
  try {
    store = await openStore(config);
  } catch (error) {
    if (error instanceof StoreLocked) return { title, lines: [{ ok: true, text: 'in use by a running tokenwatch (only one process can open the embedded store)' }] };
    if (error instanceof StoreUnavailable) return { title, lines: [{ ok: 'warn', text: `${errorText(error)}: events are not stored` }] };
    return { title, lines: [{ ok: false, text: `cannot open: ${errorText(error)}` }] };
  }
  try {
    const version = await store.query<{ version: string }>('SELECT version()');
    const lines: Line[] = [{ ok: true, text: `connected, ClickHouse ${Object.values(version[0] ?? {})[0] ?? '?'}` }];
    const applied = await store.query<{ name: string }>(`SELECT name FROM ${config.clickhouse.database}.schema_migrations FINAL ORDER BY version`).catch(() => []);
    const pending = loadMigrations().map((m) => m.name).filter((n) => !applied.some((a) => a.name === n));
    lines.push(pending.length === 0
      ? { ok: true, text: `schema up to date (${applied.length} migrations)` }
      : { ok: config.clickhouse.migrateOnStart ? 'warn' : false, text: `migrations pending: ${pending.join(', ')} (${config.clickhouse.migrateOnStart ? 'applied on the next start' : 'run tokenwatch migrate'})` });
    return { title, lines };
  } catch (error) {
    return { title, lines: [{ ok: false, text: `cannot query: ${errorText(error)}` }] };
  } finally {
    await store.close();
  }
}

interface CheckReport {
  configuration: string;
  stateDir: string;
  listenAddress: string;
  sections: { title: string; lines: { status: 'ok' | 'warn' | 'skip' | 'fail'; text: string }[] }[];
  problems: number;
}

function status(line: Line, skipped: boolean): CheckReport['sections'][number]['lines'][number]['status'] {
  return line.ok === true ? 'ok' : line.ok === 'warn' ? 'warn' : skipped ? 'skip' : 'fail';
}

export async function checkCommand(options: CommonOptions & { json?: boolean; grants?: boolean; role: string; mode?: string }): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  if (options.mode !== undefined && options.mode !== 'replication' && options.mode !== 'polling') {
    process.stderr.write(`tokenwatch check: --mode must be polling or replication, not ${JSON.stringify(options.mode)}\n`);
    process.exit(2);
  }
  if (options.grants) {
    // Only the SQL, from the configuration: nothing is connected.
    process.stdout.write(grantsSql(loaded.config.sources as (SourceConfig & { name: string })[], options.role, { replication: options.mode === 'replication' }));
    return;
  }
  const report: CheckReport = {
    configuration: `${loaded.file ?? '(no file: defaults and environment)'} is valid`,
    stateDir: loaded.config.stateDir,
    listenAddress: loaded.config.server.listenAddress,
    sections: [],
    problems: 0,
  };
  const embedded = await resolveDatabase(loaded, logger);
  try {
    const queue = [...(loaded.config.sources as NamedSource[])];
    const pricing = new Pricing(loaded.config.pricing);
    let usable = 0;
    for (let source = queue.shift(); source !== undefined; source = queue.shift()) {
      const lines = await checkSource(source, pricing, (parts) => queue.unshift(...parts));
      // With sources chosen automatically, a source whose tables are absent is skipped, not a problem.
      const skipped = loaded.autoSources && lines.some((l) => l.ok === false && l.text.includes('not found'));
      if (!skipped) usable += 1;
      report.sections.push({
        title: `source ${source.name} (${source.type}) ${embedded ? '[embedded demo database]' : redactSecrets(source.databaseUrl ?? '')}`,
        lines: lines.map((l) => ({ status: status(l, skipped), text: l.text })),
      });
    }
    if (usable === 0) {
      // `run` on such a database logs an error every second: check must not pass it.
      report.sections.push({
        title: 'sources',
        lines: [{ status: 'fail', text: `none of the known sources has its tables in this database (${loaded.config.sources.map((s) => `${s.type}: ${adapterFor(s.type).requiredTables(s as NamedSource).join(', ')}`).join('; ')}): point DATABASE_URL at the proxy's database, or list sources with their schema and table names in the configuration` }],
      });
    }
    const store = await checkStore(loaded.config);
    report.sections.push({ title: `event store ${store.title}`, lines: store.lines.map((l) => ({ status: status(l, false), text: l.text })) });
  } finally {
    await embedded?.close();
  }
  report.problems = report.sections.reduce((n, s) => n + s.lines.filter((l) => l.status === 'fail').length, 0);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const mark = { ok: 'ok  ', warn: 'warn', skip: 'skip', fail: 'FAIL' } as const;
    let text = `configuration: ${report.configuration}\nstate directory: ${report.stateDir}\nHTTP: ${report.listenAddress}\n`;
    for (const section of report.sections) text += `\n${section.title}\n${section.lines.map((l) => `  ${mark[l.status]} ${l.text}\n`).join('')}`;
    text += report.problems === 0 ? '\nall checks passed\n' : `\n${report.problems} problem(s) found\n`;
    process.stdout.write(text);
  }
  process.exitCode = report.problems === 0 ? 0 : 1;
}
