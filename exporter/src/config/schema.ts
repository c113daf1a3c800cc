// The one configuration object. Built and validated once at start (config/load.ts); nothing
// else reads the environment or the YAML file. Every field has a default so an empty file,
// or no file at all, is a valid configuration (the embedded demo).
import { z } from 'zod';
import { ByteSize, Duration } from './duration.ts';
import { SourceName } from '../model/events.ts';

const SqlIdentifier = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[^\0"]+$/, 'must not contain a double quote or NUL byte');

const PostgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\//, 'must be a PostgreSQL connection URL such as postgres://user:password@host:5432/dbname');

export const SourceConfig = z
  .object({
    /** Which adapter reads this database; see exporter/src/sources/. */
    type: SourceName,
    /** A name for this source in metrics and checkpoints; defaults to the type. */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/, 'must be lower-case letters, digits, "-" or "_"')
      .optional(),
    /** Defaults to DATABASE_URL. */
    databaseUrl: PostgresUrl.optional(),
    schema: SqlIdentifier.default('public'),
    /** Rename tables: { <table name in the reference schema>: <name in your database> }. */
    tables: z.record(z.string(), SqlIdentifier).default({}),
    /**
     * Rename columns: { <column name in the reference schema>: <name in your database> }, e.g.
     * { domain: project_id } for newer Claude Nexus Proxy versions. Applies to every table of
     * the source that has that column. null marks a column your schema does not have.
     */
    columns: z.record(z.string(), SqlIdentifier.nullable()).default({}),
    /**
     * How incremental tables are read: "polling" (the default: queries on pollInterval), or
     * "replication" (PostgreSQL logical replication: a publication and a slot named after the
     * source; needs wal_level = logical and the REPLICATION privilege; docs/replication.md).
     */
    mode: z.enum(['polling', 'replication']).default('polling'),
    /**
     * mode: replication, when the slot is missing or invalidated after the first start:
     * "reload" (a new slot, the tables loaded again under its snapshot; row versions keep that
     * from counting twice) or "polling" (the source is polled from the last change handled,
     * logged and shown as tokenwatch_replication_fallback 1). docs/replication.md.
     */
    onSlotLost: z.enum(['reload', 'polling']).default('reload'),
    /**
     * mode: replication: a transaction streamed while it runs that inserts or updates more rows
     * than this keeps no ids; its rows are found by xmin, in one scan of each table it changed
     * (tokenwatch_source_xmin_scans_total). Bounds memory at about 150 bytes a row below it.
     */
    largeTransactionRows: z.number().int().min(1).default(100_000),
    pollInterval: Duration.prefault('5s'),
    /** How often tables updated in place (usage counters, conversations, agents) are re-read. */
    snapshotInterval: Duration.prefault('30s'),
    batchSize: z.number().int().min(1).max(100_000).default(5000),
    /**
     * How long after its timestamp a row may still commit. Claude Nexus Proxy writes a row when
     * the response ends, so this must exceed the longest request. Rows that commit later than
     * this are missed (see docs/how-rows-are-read.md).
     */
    maxCommitDelay: Duration.prefault('15m'),
    /**
     * How far back the straggler sweep looks for rows that committed later than
     * maxCommitDelay; "0s" turns it off (such rows are then missed). See docs/how-rows-are-read.md, "Rows that
     * commit late".
     */
    sweepWindow: Duration.prefault('24h'),
    /** How often the straggler sweep runs. */
    sweepInterval: Duration.prefault('10m'),
    /**
     * How often each incremental table is reconciled with the event store: rows per day on both
     * sides for closed days (older than sweepWindow), missing rows delivered; "0s" turns it off.
     */
    reconcileInterval: Duration.prefault('1h'),
    /** How many closed days back reconciliation compares. */
    reconcileDays: z.number().int().min(1).max(366).default(7),
    /** Where a source with no checkpoint starts: "earliest", "now", or an ISO timestamp. */
    startFrom: z.union([z.literal('earliest'), z.literal('now'), z.iso.datetime({ offset: true })]).default('earliest'),
    /** Only rows of these request types are read from api_requests (Claude Nexus Proxy). */
    requestTypes: z.array(z.string()).default(['inference']),
    /**
     * Sidekick Forge: the databases of dedicated (champion, paragon) clients, each holding that
     * client's agents, conversations and transcripts. databaseUrl is then the platform database
     * (clients, tier quotas, usage, activity log, LiveKit events, and the shared clients' agents).
     */
    clientDatabases: z
      .array(
        z
          .object({
            /** The client's id (clients.id in the platform database). */
            client: z.uuid('must be the client\'s id (clients.id in the platform database)'),
            /** Names this database in stream names and self-metrics ("<source>.<name>"); default: client-<first 8 hex digits of the id>. */
            name: z
              .string()
              .regex(/^[a-z0-9][a-z0-9_-]*$/, 'must be lower-case letters, digits, "-" or "_"')
              .optional(),
            databaseUrl: PostgresUrl,
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .superRefine((source, ctx) => {
    if (source.clientDatabases.length > 0 && source.type !== 'sidekick-forge') {
      ctx.addIssue({ code: 'custom', path: ['clientDatabases'], message: 'only a sidekick-forge source has client databases' });
    }
    const names = new Set<string>();
    for (const [index, db] of source.clientDatabases.entries()) {
      const name = clientDatabaseName(db);
      if (names.has(name)) ctx.addIssue({ code: 'custom', path: ['clientDatabases', index, 'name'], message: `"${name}" names two client databases; give each a unique name` });
      names.add(name);
    }
    if (source.sweepWindow > 0 && source.sweepWindow <= source.maxCommitDelay) {
      ctx.addIssue({ code: 'custom', path: ['sweepWindow'], message: 'must be longer than maxCommitDelay (the sweep reads below the poll\'s window), or "0s" to turn the sweep off' });
    }
    if (source.sweepInterval <= 0) ctx.addIssue({ code: 'custom', path: ['sweepInterval'], message: 'must be longer than 0' });
  });
export type SourceConfig = z.infer<typeof SourceConfig>;

/** The name of a client database: its own, or client-<first 8 hex digits of the client id>. */
export function clientDatabaseName(db: { client: string; name?: string | undefined }): string {
  return db.name ?? `client-${db.client.replaceAll('-', '').slice(0, 8).toLowerCase()}`;
}

export const Config = z
  .object({
    sources: z.array(SourceConfig).default([]),
    /** Where checkpoints and the embedded stores live. */
    stateDir: z.string().min(1).default('./data'),
    server: z
      .object({
        /** host:port for /metrics, /healthz and /readyz. */
        listenAddress: z
          .string()
          .regex(/^[^:]*:\d{1,5}$/, 'must be host:port, e.g. "0.0.0.0:9464" or ":9464"')
          .refine((address) => Number(address.slice(address.lastIndexOf(':') + 1)) <= 65535, 'the port must be 0 to 65535')
          .default('0.0.0.0:9464'),
        /** Path of the metrics endpoint (--web.telemetry-path), as exporter-toolkit's exporters have it. */
        telemetryPath: z
          .string()
          .regex(/^\/[^\s?#]*$/, 'must be a URL path starting with "/", e.g. "/metrics"')
          .refine((path) => !['/healthz', '/readyz', '/api/v1/query'].includes(path), 'is taken by another endpoint (/healthz, /readyz, /api/v1/query)')
          .default('/metrics'),
        /** TLS and basic auth: a Prometheus exporter-toolkit web configuration file (--web.config.file). */
        webConfigFile: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    quality: z
      .object({
        /** Message content larger than this is truncated (and counted as oversized_body). */
        maxContentBytes: ByteSize.prefault('256KiB'),
        /** A timestamp further than this in the future is rejected (clock skew allowance). */
        futureTolerance: Duration.prefault('5m'),
        /** Each rejection reason is logged at most once per this interval. */
        logInterval: Duration.prefault('1m'),
      })
      .strict()
      .prefault({}),
    sinks: z
      .object({
        /** Also write every canonical event as one JSON line to this file ("-" for stdout). */
        jsonl: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    clickhouse: z
      .object({
        /** ClickHouse server HTTP URL (CLICKHOUSE_URL); unset: the embedded engine (chdb) in stateDir. */
        url: z.url({ protocol: /^https?$/ }).optional(),
        /** Write events to ClickHouse at all. */
        enabled: z.boolean().default(true),
        database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a plain identifier').default('tokenwatch'),
        /** Apply migrations when run or backfill starts. */
        migrateOnStart: z.boolean().default(true),
        /** Cluster name for ON CLUSTER DDL and Distributed tables (servers only). */
        cluster: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional(),
        /** Conversation content: full, redacted (emails, keys, tokens, phones, cards masked) or none. */
        content: z.enum(['full', 'redacted', 'none']).default('redacted'),
        /** Days after which stored message content is cleared (TTL); unset: kept. */
        contentTtlDays: z.number().int().positive().optional(),
        /**
         * `tokenwatch backfill` moves request rows in bulk (PostgreSQL COPY, mapped by
         * ClickHouse) where the source supports it; false: row by row, like `run`.
         */
        bulkBackfill: z.boolean().default(true),
        /** Rows per bulk chunk: a crash repeats at most one chunk. */
        bulkChunkRows: z.number().int().min(1000).max(10_000_000).default(250_000),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        /** Most series one metric may have; beyond it label values fold into "other". */
        maxSeriesPerMetric: z.number().int().min(1).default(20_000),
        /** Most distinct values per open-ended label (tenant, client, model, account, agent, error_type). */
        maxValuesPerLabel: z.partialRecord(z.enum(['tenant', 'client', 'model', 'account', 'agent', 'error_type']), z.number().int().min(1)).default({}),
        /** Keep only these values of a label; everything else is "other". */
        allow: z.partialRecord(z.enum(['tenant', 'client', 'model', 'account', 'agent', 'error_type']), z.array(z.string()).min(1)).default({}),
        /** Output-token limit of the rolling 5-hour window per upstream account (Claude Nexus Proxy). */
        accountWindowLimit: z.number().int().positive().default(140_000),
      })
      .strict()
      .prefault({}),
    probes: z
      .object({
        interval: Duration.prefault('30s'),
        timeout: Duration.prefault('5s'),
        /** Extra HTTP dependencies to probe, e.g. a LiveKit server or the upstream LLM API. */
        http: z
          .array(
            z
              .object({
                name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'must be lower-case letters, digits, "-" or "_"'),
                url: z.url({ protocol: /^https?$/ }),
                kind: z.string().default('http'),
                /** Sent as `Authorization: Bearer …`; never logged or exposed. */
                bearerToken: z.string().min(1).optional(),
                /** A file holding the bearer token (a mounted secret), read at start. */
                bearerTokenFile: z.string().min(1).optional(),
              })
              .strict()
              .refine((p) => !(p.bearerToken && p.bearerTokenFile), { message: 'set bearerToken or bearerTokenFile, not both' }),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
    otlp: z
      .object({
        /** Push metrics over OTLP/HTTP (set automatically when OTEL_EXPORTER_OTLP_ENDPOINT is set). */
        enabled: z.boolean().default(false),
        interval: Duration.prefault('60s'),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
        /** auto: readable text on a terminal, JSON lines otherwise (containers, files, log shippers). */
        format: z.enum(['auto', 'json', 'text']).default('auto'),
      })
      .strict()
      .prefault({}),
    /**
     * Prices come from the price catalog (docs/pricing.md); `models` overrides it per model
     * name prefix (USD per million tokens), `tenants` applies a negotiated discount. A map of
     * model prefixes at the top level (the older form) is read as `models`.
     */
    pricing: z
      .preprocess(
        (value) => (value && typeof value === 'object' && !('models' in value) && !('tenants' in value) ? { models: value } : value),
        z
          .object({
            models: z
              .record(
                z.string().min(1),
                z
                  .object({
                    input: z.number().nonnegative(),
                    output: z.number().nonnegative(),
                    cacheRead: z.number().nonnegative().optional(),
                    cacheWrite: z.number().nonnegative().optional(),
                    cacheWrite1h: z.number().nonnegative().optional(),
                    webSearchesPerThousand: z.number().nonnegative().optional(),
                  })
                  .strict(),
              )
              .default({}),
            tenants: z.record(z.string().min(1), z.object({ discount: z.number().min(0).max(1) }).strict()).default({}),
          })
          .strict(),
      )
      .default({ models: {}, tenants: {} }),
  })
  .strict();
export type Config = z.infer<typeof Config>;
export type ConfigInput = z.input<typeof Config>;
