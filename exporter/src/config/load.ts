// Builds the Config from a YAML file plus environment variables, and reports every problem at
// once in a form a person can act on: which field, what is wrong with the value, what is expected.
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { Config } from './schema.ts';
import { SourceName } from '../model/events.ts';

/** Environment variables tokenwatch reads (documented in docs/configuration.md). */
export const ENVIRONMENT_VARIABLES = {
  TOKENWATCH_CONFIG: 'Path of the YAML configuration file (same as --config).',
  CLICKHOUSE_URL: 'HTTP URL of a ClickHouse server, e.g. http://user:password@clickhouse:8123 (clickhouse.url). Unset: the embedded engine.',
  DATABASE_URL: 'PostgreSQL URL of the source database, for every source that sets no databaseUrl. Unset: the embedded demo database.',
  TOKENWATCH_SOURCES: 'Comma-separated source types to read when the file lists no sources, e.g. "litellm". Default: every type whose tables exist.',
  TOKENWATCH_STATE_DIR: 'Directory for checkpoints and embedded stores (stateDir).',
  TOKENWATCH_LISTEN_ADDRESS: 'host:port of the HTTP server (server.listenAddress, --web.listen-address).',
  TOKENWATCH_TELEMETRY_PATH: 'path of the metrics endpoint (server.telemetryPath, --web.telemetry-path; default /metrics).',
  TOKENWATCH_WEB_CONFIG_FILE: 'TLS and basic auth for the HTTP server: a Prometheus web configuration file (server.webConfigFile, --web.config.file).',
  TOKENWATCH_LOG_LEVEL: 'debug, info, warn or error (log.level).',
  TOKENWATCH_LOG_FORMAT: 'json, text or auto (log.format; auto: text on a terminal, json otherwise).',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'Push metrics over OTLP/HTTP to this collector (also OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, _HEADERS, …).',
  OTEL_METRIC_EXPORT_INTERVAL: 'Milliseconds between OTLP pushes (otlp.interval; default 60000).',
  DATABASE_URL_FILE: 'A file holding DATABASE_URL (Docker and Kubernetes secrets); also CLICKHOUSE_URL_FILE.',
} as const;

/** Variables that may hold a secret and so may come from a file named by <NAME>_FILE instead. */
const SECRET_VARIABLES = ['DATABASE_URL', 'CLICKHOUSE_URL'] as const;

/**
 * The environment with every <NAME>_FILE of SECRET_VARIABLES read into <NAME> (the file's
 * content, trailing newline removed), as Docker and Kubernetes secrets are mounted. Setting
 * both, or naming a file that cannot be read, is a configuration error.
 */
function withSecretFiles(env: Env): Env {
  const problems: string[] = [];
  const out: Env = { ...env };
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (file === undefined || file === '') continue;
    if (env[name] !== undefined && env[name] !== '') {
      problems.push(`${name} and ${name}_FILE are both set; set one of them`);
      continue;
    }
    try {
      out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      problems.push(`${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

export interface LoadedConfig {
  config: Config;
  /** The YAML file read, if any. */
  file: string | undefined;
  /** True when no database was configured and the embedded demo database is to be used. */
  embedded: boolean;
  /** Source types chosen automatically (no `sources` in the file): probe tables before reading. */
  autoSources: boolean;
}

type Env = Record<string, string | undefined>;

/** Replaces ${VAR} and ${VAR:-default} in the file's text, as the OTel Collector does. */
function expandEnv(text: string, env: Env, problems: string[]): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_all, name: string, fallback: string | undefined) => {
    const value = env[name] ?? fallback;
    if (value === undefined) {
      problems.push(`\${${name}} is used in the configuration file but the environment variable ${name} is not set`);
      return '';
    }
    return value;
  });
}

function readFileConfig(file: string, env: Env): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError([`cannot read configuration file ${file}: ${(error as Error).message}`]);
  }
  const problems: string[] = [];
  const expanded = expandEnv(text, env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  let parsed: unknown;
  try {
    parsed = parseYaml(expanded);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new ConfigError([`${file} is not valid YAML${where}: ${(error as Error).message.split('\n')[0]}`]);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`${file}: the top level must be a mapping of settings, got ${Array.isArray(parsed) ? 'a list' : typeof parsed}`]);
  }
  return parsed as Record<string, unknown>;
}

function describeValue(root: unknown, path: PropertyKey[]): string {
  let value: unknown = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return 'missing';
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function formatIssues(error: z.ZodError, input: unknown): string[] {
  return error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
    const value = issue.code === 'unrecognized_keys' ? '' : ` (got ${redactSecrets(describeValue(input, issue.path))})`;
    return `${field}: ${issue.message}${value}`;
  });
}

function applyFlags(config: Record<string, unknown>, flags: ConfigFlags): Record<string, unknown> {
  const server = { ...((config.server ?? {}) as Record<string, unknown>) };
  if (flags.listenAddress !== undefined) server.listenAddress = flags.listenAddress;
  if (flags.telemetryPath !== undefined) server.telemetryPath = flags.telemetryPath;
  if (flags.webConfigFile !== undefined) server.webConfigFile = flags.webConfigFile;
  return { ...config, server };
}

function applyEnvironment(raw: Record<string, unknown>, env: Env, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  const nested = (key: string): Record<string, unknown> => {
    const current = out[key];
    const copy = current && typeof current === 'object' && !Array.isArray(current) ? { ...(current as Record<string, unknown>) } : {};
    out[key] = copy;
    return copy;
  };
  if (env.TOKENWATCH_STATE_DIR) out.stateDir = env.TOKENWATCH_STATE_DIR;
  if (env.CLICKHOUSE_URL) nested('clickhouse').url = env.CLICKHOUSE_URL;
  if (env.TOKENWATCH_LISTEN_ADDRESS) nested('server').listenAddress = env.TOKENWATCH_LISTEN_ADDRESS;
  if (env.TOKENWATCH_WEB_CONFIG_FILE) nested('server').webConfigFile = env.TOKENWATCH_WEB_CONFIG_FILE;
  if (env.TOKENWATCH_TELEMETRY_PATH) nested('server').telemetryPath = env.TOKENWATCH_TELEMETRY_PATH;
  if (env.TOKENWATCH_LOG_LEVEL) nested('log').level = env.TOKENWATCH_LOG_LEVEL;
  if (env.TOKENWATCH_LOG_FORMAT) nested('log').format = env.TOKENWATCH_LOG_FORMAT;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) nested('otlp').enabled = true;
  if (env.OTEL_METRIC_EXPORT_INTERVAL) nested('otlp').interval = `${env.OTEL_METRIC_EXPORT_INTERVAL}ms`;
  if (out.sources === undefined && env.TOKENWATCH_SOURCES) {
    const types = env.TOKENWATCH_SOURCES.split(',').map((t) => t.trim()).filter(Boolean);
    for (const type of types) {
      if (!SourceName.safeParse(type).success) {
        problems.push(`TOKENWATCH_SOURCES: unknown source type "${type}"; expected a comma-separated list of ${SourceName.options.join(', ')}`);
      }
    }
    out.sources = types.map((type) => ({ type }));
  }
  return out;
}

/**
 * Loads and validates the configuration. Throws ConfigError listing every problem found;
 * the CLI turns that into exit code 2 before anything else happens.
 */
/** Command-line flags that set configuration (they win over the file and the environment). */
export interface ConfigFlags {
  listenAddress?: string | undefined;
  telemetryPath?: string | undefined;
  webConfigFile?: string | undefined;
}

export function loadConfig(options: { file?: string | undefined; env?: Env; flags?: ConfigFlags } = {}): LoadedConfig {
  const env = withSecretFiles(options.env ?? process.env);
  const file = options.file ?? env.TOKENWATCH_CONFIG;
  const raw = file ? readFileConfig(file, env) : {};
  const problems: string[] = [];
  const merged = applyFlags(applyEnvironment(raw, env, problems), options.flags ?? {});
  const autoSources = merged.sources === undefined;
  if (autoSources) merged.sources = SourceName.options.map((type) => ({ type }));
  const result = Config.safeParse(merged);
  if (!result.success) problems.push(...formatIssues(result.error, merged));
  if (problems.length > 0) throw new ConfigError(problems);
  const config = result.data!;

  const databaseUrl = env.DATABASE_URL;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError([`DATABASE_URL: must be a PostgreSQL connection URL such as postgres://user:password@host:5432/dbname (got ${redactSecrets(databaseUrl)})`]);
  }
  const names = new Set<string>();
  for (const [index, source] of config.sources.entries()) {
    source.name ??= source.type;
    if (names.has(source.name)) problems.push(`sources.${index}.name: "${source.name}" is used by two sources; give each source a unique name`);
    names.add(source.name);
    source.databaseUrl ??= databaseUrl;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const withUrl = config.sources.filter((s) => s.databaseUrl !== undefined).length;
  if (withUrl > 0 && withUrl < config.sources.length) {
    const missing = config.sources.filter((s) => s.databaseUrl === undefined).map((s) => s.name);
    throw new ConfigError([`sources ${missing.join(', ')}: no databaseUrl and DATABASE_URL is not set; set one of them (the embedded demo database is used only when no source has a database)`]);
  }
  return { config, file, embedded: withUrl === 0, autoSources };
}

/**
 * Hides secrets before anything is printed: passwords in connection URLs, bearer tokens,
 * and password, token, secret and API-key values in key=value text and query strings.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^:/?#\s@"]*:)[^@/\s"]*@/gi, '$1****@')
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g, '$1 ****')
    .replace(/((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth)\w*["']?\s*[=:]\s*)("?)[^\s"&;,]+/gi, '$1$2****');
}
