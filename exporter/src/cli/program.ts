// tokenwatch command line. Every command validates the configuration first and exits with
// code 2 on a bad configuration, before connecting to anything. Every command's --help ends
// with an example.
import { Command, Option } from 'commander';
import { ENVIRONMENT_VARIABLES } from '../config/load.ts';
import type { CommonOptions } from './load-or-exit.ts';
import { runCommand } from './run.ts';
import { backfillCommand } from './backfill.ts';
import { checkCommand } from './check.ts';
import { verifyCommand } from './verify.ts';
import { pricingCommand, type PricingOptions } from './pricing.ts';
import { repriceCommand, type RepriceOptions } from './reprice.ts';
import { replicationDropCommand, replicationStatusCommand, type ReplicationOptions } from './replication.ts';
import { simulateCommand, type SimulateOptions } from './simulate.ts';
import { exportConversationsCommand, migrateCommand, queryCommand, reportUsageCommand, REPORT_DIMENSIONS, type OutputFormat } from './store-commands.ts';
import { VERSION } from '../version.ts';

const environmentHelp = `\nEnvironment:\n${Object.entries(ENVIRONMENT_VARIABLES)
  .map(([name, text]) => `  ${name.padEnd(26)} ${text}`)
  .join('\n')}\n`;

/**
 * The options every command takes. `results`: the command prints a result on stdout, so its
 * informational log lines are off unless --log-level asks for them (they go to stderr).
 */
/** The listen address: where `run` serves, and where the store commands find a running `run`. */
function listenAddressOption(purpose: string): Option {
  return new Option('--web.listen-address <host:port>', `${purpose} (server.listenAddress, $TOKENWATCH_LISTEN_ADDRESS; default 0.0.0.0:9464)`);
}

function command(parent: Command, name: string, examples: string[], options: { results?: boolean } = {}): Command {
  return parent
    .command(name)
    .option('-c, --config <file>', 'YAML configuration file (default: $TOKENWATCH_CONFIG; none: defaults and environment)')
    .addOption(new Option('--log-level <level>', `log level${options.results ? ' (default: warn, so that stdout and stderr hold only the result and problems)' : ''}`).choices(['debug', 'info', 'warn', 'error']))
    .addOption(new Option('--log-format <format>', 'log format (default: text on a terminal, json otherwise)').choices(['json', 'text']))
    .hook('preAction', (cmd) => {
      if (options.results && cmd.getOptionValue('logLevel') === undefined) cmd.setOptionValue('logLevel', 'warn');
    })
    .addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n${environmentHelp}`);
}

export function buildProgram(): Command {
  const program = new Command('tokenwatch')
    .description('Reads the PostgreSQL tables of LLM proxies and agent platforms (Claude Nexus Proxy, Sidekick Forge, LiteLLM)\nand turns them into Prometheus metrics and events. With no DATABASE_URL it runs on an embedded demo database.')
    .version(VERSION)
    .showHelpAfterError()
    .addHelpText('after', '\nExamples:\n  $ tokenwatch run                      # the embedded demo: metrics on http://localhost:9464/metrics\n  $ DATABASE_URL=postgres://tokenwatch_ro@db:5432/proxy tokenwatch check\n  $ tokenwatch <command> --help\n');
  command(program, 'run', ['tokenwatch run', 'DATABASE_URL=postgres://tokenwatch_ro:secret@db.internal:5432/proxy tokenwatch run --log-format json'])
    .description('Poll the sources continuously, export events and serve /metrics, /healthz and /readyz (the default job).')
    .option('--no-demo-traffic', 'with the embedded demo database: no simulated live traffic')
    .addOption(listenAddressOption('address to serve metrics, health and readiness on'))
    .option('--web.telemetry-path <path>', 'path of the metrics endpoint (server.telemetryPath, $TOKENWATCH_TELEMETRY_PATH; default /metrics)')
    .option('--web.config.file <file>', 'TLS and basic auth for the HTTP server: a Prometheus exporter-toolkit web configuration file (server.webConfigFile)')
    .action(async (options: CommonOptions & { demoTraffic: boolean }) => runCommand(options));
  command(program, 'backfill', ['tokenwatch backfill', 'tokenwatch backfill --no-progress --json > backfill-summary.json'])
    .description('Read everything committed up to now, then exit. Resumes from the checkpoints, so it is safe to repeat.')
    .option('--no-progress', 'no progress bar (progress is then logged every 10 s, as when stderr is not a terminal)')
    .option('--json', 'print the summary (rows per stream, bad rows) as JSON on stdout')
    .action(async (options: CommonOptions & { progress: boolean; json?: boolean }) => backfillCommand(options));
  command(program, 'check', ['DATABASE_URL=postgres://tokenwatch_ro@db:5432/proxy tokenwatch check', 'tokenwatch check --json | jq .problems', 'TOKENWATCH_SOURCES=litellm tokenwatch check --grants --role tokenwatch_ro | psql "$ADMIN_DATABASE_URL"', 'tokenwatch check --grants --mode replication'], { results: true })
    .description('Validate the configuration, connect to every source and the event store, and report tables, columns, permissions, indexes and pending migrations on one screen. Exit 1 when something needs fixing.\nWith --grants: print the SQL of a read-only role granted exactly the columns tokenwatch reads (connects to nothing).')
    .option('--json', 'print the report as JSON')
    .option('--grants', 'print the GRANT statements of a least-privilege role instead of checking')
    .option('--role <name>', 'the role --grants creates', 'tokenwatch_ro')
    .option('--mode <mode>', 'with --grants: replication adds what mode: replication needs for every source (REPLICATION attribute, publication); default: each source\'s own mode')
    .action(async (options: CommonOptions & { json?: boolean; grants?: boolean; role: string; mode?: string }) => checkCommand(options));
  command(program, 'verify', ['tokenwatch verify', 'tokenwatch verify --days 30 --json | jq .ok'], { results: true })
    .description('Compare every source table with the event store, row counts per closed day (and ids where they differ): proof that nothing is missing.\nExit 1 when a day differs. Repairs nothing: `run` delivers missing rows itself every reconcileInterval.')
    .option('--days <n>', 'how many closed days back (default: reconcileDays, 7)')
    .option('--json', 'print the comparison as JSON')
    .action(async (options: CommonOptions & { days?: string; json?: boolean }) => verifyCommand(options));
  command(program, 'pricing', ['tokenwatch pricing claude-opus-4-6', 'tokenwatch pricing claude-opus-4-6 --at 2026-03-01 --tenant acme.example.com', 'tokenwatch pricing gpt-4o --json'], { results: true })
    .argument('[model]', 'a model name as the proxy records it (without one: the catalog and the configured overrides)')
    .description('Show the price that applies to a model at a time (input, output, cache reads, 5-minute and 1-hour cache writes, web searches, tiers)\nand where it comes from: the price catalog shipped with tokenwatch, or pricing.models in the configuration. Exit 1 when the model has no price.')
    .option('--at <time>', 'the time to price at, e.g. 2026-03-01 or 2026-03-01T12:00:00Z (default: now)')
    .option('--tenant <tenant>', 'apply this tenant\'s discount (pricing.tenants)')
    .option('--provider <provider>', 'the provider to search the catalog first (as LiteLLM\'s custom_llm_provider)')
    .option('--json', 'print the price as JSON')
    .action((model: string | undefined, options: PricingOptions) => pricingCommand(model, options));
  command(program, 'reprice', ['tokenwatch reprice --from 2026-11-01', 'tokenwatch reprice --from 2026-11-01 --to 2026-12-01 --json'], { results: true })
    .description('After a price change (pricing: in the configuration, or a newer tokenwatch), compute the stored costs of the requests of a date range again\nfrom their source rows, and print how much they changed. Counters on /metrics are not changed. With the embedded event store, stop `run` first.')
    .requiredOption('--from <YYYY-MM-DD>', 'first UTC day to reprice')
    .option('--to <YYYY-MM-DD>', 'UTC day to stop before (default: tomorrow)')
    .option('--json', 'print the result as JSON')
    .action(async (options: RepriceOptions) => repriceCommand(options));
  command(program, 'simulate', [
    'tokenwatch simulate --history 30d --rate 0.2 --no-live        # a month of history, then exit',
    'DATABASE_URL=postgres://postgres@localhost:5432/demo tokenwatch simulate --rate 5 --for 10m',
  ])
    .description('Write realistic traffic into the source tables of the three schemas (creating them where missing): a history of past days, then live traffic\nuntil stopped. Into DATABASE_URL, else the embedded demo database (not while `run` uses it). For demos and load tests, never production.')
    .option('--history <duration>', 'write this much history first, e.g. 30d or 12h (default: none)')
    .option('--rate <requests/s>', 'Claude Nexus Proxy requests per second, averaged over a week (LiteLLM and Sidekick Forge scale with it)', '1')
    .option('--seed <n>', 'the same seed gives the same tenants, clients and traffic', '1')
    .option('--for <duration>', 'stop the live traffic after this long (default: until Ctrl-C)')
    .option('--no-live', 'exit after the history')
    .option('--sources <types>', `comma-separated: ${['claude-nexus-proxy', 'sidekick-forge', 'litellm'].join(', ')} (default: all)`)
    .option('--ready-file <path>', 'write this file once the tables and history are in place (a container health check)')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print the summary as JSON on stdout')
    .action(async (options: SimulateOptions) => simulateCommand(options));
  command(program, 'migrate', ['tokenwatch migrate', 'CLICKHOUSE_URL=http://tokenwatch:secret@clickhouse:8123 tokenwatch migrate'])
    .description('Apply the ClickHouse migrations (also done on start unless clickhouse.migrateOnStart is false). Safe to repeat.')
    .action(async (options: CommonOptions) => migrateCommand(options));
  command(program, 'query', ['tokenwatch query "SELECT tenant, count() AS requests FROM tokenwatch.requests FINAL GROUP BY tenant"', 'tokenwatch query --format csv "SELECT * FROM tokenwatch.requests_daily" > daily.csv'], { results: true })
    .argument('<sql>', 'one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)')
    .description('Run ad-hoc SQL on the event store (embedded or server) and print the result.')
    .addOption(listenAddressOption('where the running `tokenwatch run` listens, asked when it holds the embedded store'))
    .addOption(new Option('-f, --format <format>', 'output format').choices(['table', 'csv', 'json']).default('table'))
    .option('--json', 'the same as --format json')
    .action(async (sql: string, options: CommonOptions & { format: OutputFormat; json?: boolean }) => queryCommand(sql, { ...options, format: options.json ? 'json' : options.format }));
  const exportCommand = program.command('export').description('Export stored events.');
  command(exportCommand, 'conversations', ['tokenwatch export conversations --tenant acme.example.com --from 2026-11-01 > acme.csv', 'tokenwatch export conversations --json --from 2026-11-01T00:00:00Z'], { results: true })
    .description('Export conversation messages, one row per message, ordered by conversation and time.')
    .addOption(listenAddressOption('where the running `tokenwatch run` listens, asked when it holds the embedded store'))
    .option('--tenant <tenant>', 'only this tenant (domain, client or team)')
    .option('--from <time>', 'from this time (inclusive), e.g. 2026-11-01 or 2026-11-01T12:00:00Z')
    .option('--to <time>', 'up to this time (exclusive)')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['csv', 'json']).default('csv'))
    .option('--json', 'the same as --format json')
    .action(async (options: CommonOptions & { tenant?: string; from?: string; to?: string; format: 'csv' | 'json'; json?: boolean }) => exportConversationsCommand({ ...options, format: options.json ? 'json' : options.format }));
  const replicationCommand = program.command('replication').description('The replication slots of the sources read in mode: replication.');
  command(replicationCommand, 'status', ['tokenwatch replication status', 'tokenwatch replication status --source litellm --json'], { results: true })
    .description('Show each replication slot: active or not, confirmed and current WAL positions, lag, and the WAL it retains on the source.')
    .option('--source <name>', 'only this source')
    .option('--json', 'print the status as JSON')
    .action(async (options: ReplicationOptions) => replicationStatusCommand(options));
  command(replicationCommand, 'drop', ['tokenwatch replication drop --source litellm'], { results: true })
    .description('Drop a source\'s replication slot (stop `run` first): its WAL is released on the source, and the next `run` loads the tables again.')
    .option('--source <name>', 'the source whose slot to drop (required)')
    .action(async (options: ReplicationOptions) => replicationDropCommand(options));
  const reportCommand = program.command('report').description('Reports for cost allocation and billing.');
  command(reportCommand, 'usage', ['tokenwatch report usage --month 2026-11 --by tenant --format table', 'tokenwatch report usage --month 2026-11 --by tenant,model --json'], { results: true })
    .description('Requests, tokens and cost of one month, grouped for cost allocation; totals equal the source tables.')
    .addOption(listenAddressOption('where the running `tokenwatch run` listens, asked when it holds the embedded store'))
    .requiredOption('--month <YYYY-MM>', 'the calendar month (UTC)')
    .option('--by <dimensions>', `comma-separated: ${REPORT_DIMENSIONS.join(', ')}`, 'tenant,model')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['csv', 'json', 'table']).default('csv'))
    .option('--json', 'the same as --format json')
    .action(async (options: CommonOptions & { month: string; by: string; format: 'csv' | 'json' | 'table'; json?: boolean }) => reportUsageCommand({ ...options, format: options.json ? 'json' : options.format }));
  return program;
}
