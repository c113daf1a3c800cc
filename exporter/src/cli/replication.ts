// `tokenwatch replication status|drop`: the replication slots of the sources read in
// mode: replication (docs/replication.md). status shows what each slot costs the source;
// drop removes a slot (its WAL is released; the next `run` loads the tables again).
import { UsageError, loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { resolveDatabase } from './runtime.ts';
import { createPool } from '../db/postgres.ts';
import { dropSlot, replicationName, slotStatus, type SlotStatus } from '../reader/replication/slot.ts';
import type { NamedSource } from '../sources/adapter.ts';

export interface ReplicationOptions extends CommonOptions {
  source?: string;
  json?: boolean;
}

function replicated(options: ReplicationOptions, sources: NamedSource[]): NamedSource[] {
  const chosen = sources.filter((s) => s.mode === 'replication' && (options.source === undefined || s.name === options.source));
  if (options.source !== undefined && chosen.length === 0) {
    throw new UsageError(`--source ${options.source}: no source of that name reads in mode: replication (sources: ${sources.map((s) => `${s.name} (${s.mode})`).join(', ')})`);
  }
  return chosen;
}

const mib = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;

export async function replicationStatusCommand(options: ReplicationOptions): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  const embedded = await resolveDatabase(loaded, logger);
  const out: (SlotStatus & { source: string; slot: string })[] = [];
  try {
    for (const source of replicated(options, loaded.config.sources as NamedSource[])) {
      const pool = createPool(source.databaseUrl!, { max: 1, applicationName: 'tokenwatch-replication' });
      try {
        const slot = replicationName(source.name);
        out.push({ source: source.name, slot, ...(await slotStatus(pool, slot)) });
      } finally {
        await pool.end();
      }
    }
  } finally {
    await embedded?.close();
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  if (out.length === 0) process.stdout.write('no source reads in mode: replication\n');
  for (const s of out) {
    process.stdout.write(s.exists
      ? `${s.source}: slot ${s.slot} ${s.active ? 'active' : 'inactive'}, wal_status ${s.walStatus}; confirmed ${s.confirmedLsn}, server at ${s.currentLsn}; lag ${mib(s.lagBytes)}, WAL retained ${mib(s.retainedBytes)}\n`
      : `${s.source}: no slot ${s.slot} (the next \`run\` creates it and loads the tables)\n`);
  }
}

export async function replicationDropCommand(options: ReplicationOptions): Promise<void> {
  if (options.source === undefined) throw new UsageError('--source NAME is required: drop one source\'s slot at a time');
  const { loaded, logger } = loadOrExit(options);
  const [source] = replicated(options, loaded.config.sources as NamedSource[]);
  const embedded = await resolveDatabase(loaded, logger);
  const pool = createPool(source!.databaseUrl!, { max: 1, applicationName: 'tokenwatch-replication' });
  try {
    const slot = replicationName(source!.name);
    const status = await slotStatus(pool, slot);
    if (status.active) {
      process.stderr.write(`slot ${slot} is in use (a running \`tokenwatch run\`): stop it first\n`);
      process.exitCode = 1;
      return;
    }
    const dropped = await dropSlot(pool, slot);
    process.stdout.write(dropped ? `dropped slot ${slot} of ${source!.name}: its WAL is released; the next \`run\` loads the tables again\n` : `no slot ${slot}: nothing to drop\n`);
  } finally {
    await pool.end();
    await embedded?.close();
  }
}
