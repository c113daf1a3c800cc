// ClickHouse schema migrations: versioned SQL files in clickhouse/migrations, rendered for a
// single node or for a cluster (Replicated* local tables plus Distributed tables, ON CLUSTER)
// from the same source, applied in order and recorded in <db>.schema_migrations. Every
// statement is idempotent (IF NOT EXISTS; a table rebuild drops its copy first and exchanges
// atomically), so applying a migration again after a crash half-way is safe.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface RenderOptions {
  database: string;
  /** Cluster name for the clustered variant; undefined for a single node. */
  cluster?: string | undefined;
}

/** clickhouse/migrations beside the package root (source checkout or installed package). */
export function migrationsDir(): string {
  for (const relative of ['../../../clickhouse/migrations', '../../../../clickhouse/migrations']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new Error('clickhouse/migrations not found next to the tokenwatch package');
}

export function loadMigrations(dir = migrationsDir()): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = readFileSync(`${dir}/${file}`, 'utf8');
      return { version: Number(file.slice(0, 4)), name: file.replace(/\.sql$/, ''), sql, checksum: createHash('sha256').update(sql).digest('hex').slice(0, 16) };
    });
}

/** Statements of a migration file: split on semicolons at line ends, comments dropped. */
export function statements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) => s.split('\n').filter((line) => !line.trim().startsWith('--')).join('\n').trim())
    .filter((s) => s.length > 0);
}

const STORAGE_TABLE = /CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)/g;

/** Renders one migration for a single node or a cluster. */
export function render(sql: string, options: RenderOptions): string[] {
  const { database, cluster } = options;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(database)) throw new Error(`invalid ClickHouse database name "${database}"`);
  let text = sql;
  const tables = [...sql.matchAll(STORAGE_TABLE)].map((m) => m[1]!);
  if (cluster !== undefined) {
    // Storage lives in <table>_local on every node; <table> is a Distributed table over it.
    for (const table of tables) text = text.replaceAll(`{db}.${table} `, `{db}.${table}_local `).replaceAll(`{db}.${table}\n`, `{db}.${table}_local\n`).replaceAll(`{db}.${table};`, `{db}.${table}_local;`);
    text = text.replace(/\{engine:(\w+)(?:\(([^)]*)\))?\}/g, (_all, engine: string, args: string | undefined) =>
      `Replicated${engine}('/clickhouse/tables/{shard}/{database}/{table}', '{replica}'${args ? `, ${args}` : ''})`);
  } else {
    text = text.replace(/\{engine:(\w+(?:\([^)]*\))?)\}/g, '$1');
  }
  // {local:name}: the storage table of a table created by an earlier migration.
  text = text.replace(/\{local:(\w+)\}/g, (_all, table: string) => (cluster === undefined ? table : `${table}_local`));
  text = text.replaceAll('{on_cluster}', cluster === undefined ? '' : `ON CLUSTER '${cluster}'`).replaceAll('{db}', database);
  const out = statements(text);
  if (cluster !== undefined) {
    for (const table of tables) {
      out.push(`CREATE TABLE IF NOT EXISTS ${database}.${table} ON CLUSTER '${cluster}' AS ${database}.${table}_local\nENGINE = Distributed('${cluster}', '${database}', '${table}_local', cityHash64(tenant))`);
    }
  }
  return out;
}

export interface CommandRunner {
  command(sql: string): Promise<void>;
  queryJson<T>(sql: string): Promise<T[]>;
}

/** Applies the migrations not yet recorded; returns the names applied. */
export async function migrate(runner: CommandRunner, options: RenderOptions, migrations = loadMigrations()): Promise<string[]> {
  const onCluster = options.cluster === undefined ? '' : ` ON CLUSTER '${options.cluster}'`;
  await runner.command(`CREATE DATABASE IF NOT EXISTS ${options.database}${onCluster}`);
  await runner.command(`CREATE TABLE IF NOT EXISTS ${options.database}.schema_migrations${onCluster}
    (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
    ENGINE = ${options.cluster === undefined ? 'ReplacingMergeTree' : "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"} ORDER BY version`);
  const applied = new Map((await runner.queryJson<{ version: number; checksum: string }>(`SELECT version, checksum FROM ${options.database}.schema_migrations FINAL`)).map((r) => [Number(r.version), r.checksum]));
  const done: string[] = [];
  for (const migration of migrations) {
    const recorded = applied.get(migration.version);
    if (recorded !== undefined) {
      if (recorded !== migration.checksum) throw new Error(`migration ${migration.name} was changed after it was applied (checksum ${recorded} != ${migration.checksum}); add a new migration instead`);
      continue;
    }
    for (const statement of render(migration.sql, options)) await runner.command(statement);
    await runner.command(`INSERT INTO ${options.database}.schema_migrations (version, name, checksum) VALUES (${migration.version}, '${migration.name}', '${migration.checksum}')`);
    done.push(migration.name);
  }
  return done;
}
