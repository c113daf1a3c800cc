// Least privilege: the column grants a role needs to run tokenwatch, from what each adapter
// declares it reads (SourceAdapter.reads), mapped through the source's table and column
// renames. Secret columns are never among them. `tokenwatch check --grants` prints them;
// `tokenwatch check` compares them with what the connected role has.
import type { SourceConfig } from '../config/schema.ts';
import { clientDatabasePart, type NamedSource } from './adapter.ts';
import { adapterFor } from './registry.ts';
import { qualifiedTable, quoteIdent } from '../reader/sql.ts';
import { replicationName } from '../reader/replication/slot.ts';

export interface TableGrant {
  schema: string;
  /** Physical table name. */
  table: string;
  /** Physical column names. */
  columns: string[];
  /** Physical names of the secret columns tokenwatch never reads. */
  secrets: string[];
}

export function tableGrants(source: NamedSource): TableGrant[] {
  const adapter = adapterFor(source.type);
  const physical = (column: string) => (source.columns[column] === null ? null : (source.columns[column] ?? column));
  const own = new Set(adapter.requiredTables(source));
  return Object.entries(adapter.reads).filter(([table]) => own.has(table)).map(([table, columns]) => ({
    schema: source.schema,
    table: source.tables[table] ?? table,
    columns: [...new Set(columns.map(physical).filter((c): c is string => c !== null))],
    secrets: (adapter.forbiddenColumns[table] ?? []).map(physical).filter((c): c is string => c !== null),
  }));
}

/**
 * Creates the role unless it exists, then sets its password from psql's variable `password`:
 * the script can be run again, and run unchanged without `-v password=…` it stops at a syntax
 * error instead of leaving a role with a password anyone could read in the documentation.
 */
function roleLines(role: string): string[] {
  const literal = `'${role.replaceAll("'", "''")}'`;
  return [
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal}) THEN CREATE ROLE ${quoteIdent(role)} LOGIN; END IF; END $$;`,
    `ALTER ROLE ${quoteIdent(role)} LOGIN PASSWORD :'password';`,
  ];
}

function grantLines(grants: readonly TableGrant[], role: string): string[] {
  const schemas = [...new Set(grants.map((g) => g.schema))];
  return [
    ...schemas.map((schema) => `GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${quoteIdent(role)};`),
    ...grants.map((g) => `GRANT SELECT (${g.columns.map(quoteIdent).join(', ')}) ON ${qualifiedTable(g.schema, g.table)} TO ${quoteIdent(role)};`),
  ];
}

/**
 * What `mode: replication` needs beyond SELECT (docs/replication.md): the REPLICATION
 * attribute, and the publication over the source's incremental tables, created here by the
 * tables' owner so that tokenwatch's role needs no ownership (it finds it and only reads it).
 */
function replicationLines(source: NamedSource, role: string): string[] {
  const tables = adapterFor(source.type).build(source).streams.map((s) => s.spec.table);
  return [
    `-- mode: replication (${source.name}): the REPLICATION attribute (on RDS and Aurora: GRANT rds_replication TO ${quoteIdent(role)}; on Cloud SQL: ALTER USER … WITH REPLICATION as cloudsqlsuperuser), wal_level = logical, and the publication:`,
    `ALTER ROLE ${quoteIdent(role)} REPLICATION;`,
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = '${replicationName(source.name)}') THEN CREATE PUBLICATION ${quoteIdent(replicationName(source.name))} FOR TABLE ${tables.join(', ')}; END IF; END $$;`,
  ];
}

/**
 * The SQL that creates a read-only role with exactly these grants (to run as the tables'
 * owner), and for a source that reads other databases (Sidekick Forge's dedicated clients),
 * the grants to run in each of them. Sources in `mode: replication` (or every source, with
 * `replication`) also get what logical replication needs.
 */
export function grantsSql(sources: readonly (SourceConfig & { name: string })[], role: string, options: { replication?: boolean } = {}): string {
  const replicated = (source: SourceConfig) => options.replication === true || source.mode === 'replication';
  const lines = [
    `-- tokenwatch: a read-only role that can read exactly the columns tokenwatch reads (${sources.map((s) => s.name).join(', ')}).`,
    '-- Secret columns (request headers, provider keys, LiveKit secrets, LiteLLM API keys, embeddings) are not granted.',
    "-- Run as the tables' owner, choosing the password: psql -v password='…' -f grants.sql. Safe to run again.",
    ...roleLines(role),
    ...grantLines(sources.flatMap(tableGrants), role),
    ...sources.filter(replicated).flatMap((source) => replicationLines(source, role)),
  ];
  for (const source of sources) {
    for (const db of source.clientDatabases) {
      // The tenant is not known without connecting; the grants do not depend on it.
      const part = clientDatabasePart(source, db, '');
      lines.push('', `-- In the database of client ${db.client} (${part.name}):`, ...roleLines(role), ...grantLines(tableGrants(part), role));
      if (replicated(source)) lines.push(...replicationLines(part, role));
    }
  }
  return [...lines, ''].join('\n');
}
