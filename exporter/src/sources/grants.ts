// Least privilege: the column grants a role needs to run tokenwatch, from what each adapter
// declares it reads (SourceAdapter.reads), mapped through the source's table and column
// renames. Secret columns are never among them. `tokenwatch check --grants` prints them;
// `tokenwatch check` compares them with what the connected role has.
import type { SourceConfig } from '../config/schema.ts';
import { adapterFor } from './registry.ts';
import { qualifiedTable, quoteIdent } from '../reader/sql.ts';

export interface TableGrant {
  schema: string;
  /** Physical table name. */
  table: string;
  /** Physical column names. */
  columns: string[];
  /** Physical names of the secret columns tokenwatch never reads. */
  secrets: string[];
}

export function tableGrants(source: SourceConfig & { name: string }): TableGrant[] {
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

/** The SQL that creates a read-only role with exactly these grants (to run as the tables' owner). */
export function grantsSql(sources: readonly (SourceConfig & { name: string })[], role: string): string {
  const grants = sources.flatMap(tableGrants);
  const schemas = [...new Set(grants.map((g) => g.schema))];
  return [
    `-- tokenwatch: a read-only role that can read exactly the columns tokenwatch reads (${sources.map((s) => s.name).join(', ')}).`,
    '-- Secret columns (request headers, provider keys, LiveKit secrets, LiteLLM API keys, embeddings) are not granted.',
    `CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD 'choose-a-password';`,
    ...schemas.map((schema) => `GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${quoteIdent(role)};`),
    ...grants.map((g) => `GRANT SELECT (${g.columns.map(quoteIdent).join(', ')}) ON ${qualifiedTable(g.schema, g.table)} TO ${quoteIdent(role)};`),
    '',
  ].join('\n');
}
