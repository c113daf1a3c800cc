// tokenwatch command line. Every command validates the configuration first and exits with
// code 2 on a bad configuration, before connecting to anything.
import { Command, Option } from 'commander';
import { ENVIRONMENT_VARIABLES } from '../config/load.ts';
import type { CommonOptions } from './load-or-exit.ts';
import { runCommand } from './run.ts';
import { backfillCommand } from './backfill.ts';
import { checkCommand } from './check.ts';
import { exportConversationsCommand, migrateCommand, queryCommand, reportUsageCommand, REPORT_DIMENSIONS, type OutputFormat } from './store-commands.ts';
import { VERSION } from '../version.ts';

const environmentHelp = `\nEnvironment:\n${Object.entries(ENVIRONMENT_VARIABLES)
  .map(([name, text]) => `  ${name.padEnd(26)} ${text}`)
  .join('\n')}\n`;

function withCommonOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'YAML configuration file (default: $TOKENWATCH_CONFIG; none: defaults and environment)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']))
    .addOption(new Option('--log-format <format>', 'log format').choices(['json', 'text']))
    .addHelpText('after', environmentHelp);
}

export function buildProgram(): Command {
  const program = new Command('tokenwatch')
    .description('Reads the PostgreSQL tables of LLM proxies and agent platforms (Claude Nexus Proxy, Sidekick Forge, LiteLLM)\nand turns them into Prometheus metrics and events. With no DATABASE_URL it runs on an embedded demo database.')
    .version(VERSION)
    .showHelpAfterError();
  withCommonOptions(program.command('run'))
    .description('Poll the sources continuously, export events and serve /metrics, /healthz and /readyz (the default job).')
    .option('--no-demo-traffic', 'with the embedded demo database: do not insert new sample rows every few seconds')
    .action(async (options: CommonOptions & { demoTraffic: boolean }) => runCommand(options));
  withCommonOptions(program.command('backfill'))
    .description('Read everything committed up to now, then exit. Resumes from the checkpoints, so it is safe to repeat.')
    .option('--no-progress', 'no progress bar (also off when stderr is not a terminal)')
    .action(async (options: CommonOptions & { progress: boolean }) => backfillCommand(options));
  withCommonOptions(program.command('check'))
    .description('Validate the configuration, connect to every source and the event store, and report tables, columns, permissions, indexes and pending migrations on one screen.')
    .action(async (options: CommonOptions) => checkCommand(options));
  withCommonOptions(program.command('migrate'))
    .description('Apply the ClickHouse migrations (also done on start unless clickhouse.migrateOnStart is false). Safe to repeat.')
    .action(async (options: CommonOptions) => migrateCommand(options));
  withCommonOptions(program.command('query').argument('<sql>', 'one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)'))
    .description('Run ad-hoc SQL on the event store (embedded or server) and print the result.')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['table', 'csv', 'json']).default('table'))
    .action(async (sql: string, options: CommonOptions & { format: OutputFormat }) => queryCommand(sql, options));
  const exportCommand = program.command('export').description('Export stored events.');
  withCommonOptions(exportCommand.command('conversations'))
    .description('Export conversation messages, one row per message, ordered by conversation and time.')
    .option('--tenant <tenant>', 'only this tenant (domain, client or team)')
    .option('--from <time>', 'from this time (inclusive), e.g. 2026-11-01 or 2026-11-01T12:00:00Z')
    .option('--to <time>', 'up to this time (exclusive)')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['csv', 'json']).default('csv'))
    .action(async (options: CommonOptions & { tenant?: string; from?: string; to?: string; format: 'csv' | 'json' }) => exportConversationsCommand(options));
  const reportCommand = program.command('report').description('Reports for cost allocation and billing.');
  withCommonOptions(reportCommand.command('usage'))
    .description('Requests, tokens and cost of one month, grouped for cost allocation; totals equal the source tables.')
    .requiredOption('--month <YYYY-MM>', 'the calendar month (UTC)')
    .option('--by <dimensions>', `comma-separated: ${REPORT_DIMENSIONS.join(', ')}`, 'tenant,model')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['csv', 'json', 'table']).default('csv'))
    .action(async (options: CommonOptions & { month: string; by: string; format: 'csv' | 'json' | 'table' }) => reportUsageCommand(options));
  return program;
}

