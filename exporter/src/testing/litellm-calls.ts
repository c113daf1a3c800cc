// LiteLLM calls as the proxy writes them (the simulator's litellmCall: one SpendLogs row per
// call with its spend, failures with their error class, error-log rows for unreachable
// deployments), with one key in ten without a team (LiteLLM writes '') and half of those
// with an organization: the rows the truth and bulk tests read.
import type { Queryable } from '../embedded/seed.ts';
import { buildWorld } from '../simulate/world.ts';
import { litellmCall } from '../simulate/litellm.ts';
import { seeded } from '../simulate/random.ts';

export async function writeLitellmCalls(db: Queryable, options: { count: number; seed: number; start: number; stepMs: number; errorLogs: boolean }): Promise<{ spendLogs: number; errorLogs: number }> {
  const world = buildWorld(options.seed);
  const rnd = seeded(options.seed);
  const written = { spendLogs: 0, errorLogs: 0 };
  for (let i = 0; i < options.count; i++) {
    for (const { table, row } of litellmCall(rnd, world, options.start + Math.floor(i * options.stepMs))) {
      const errorLog = table.includes('ErrorLogs');
      if (errorLog && !options.errorLogs) continue;
      if (!errorLog && i % 10 === 0) Object.assign(row, { team_id: '', organization_id: i % 20 === 0 ? 'org-direct' : null });
      const columns = Object.keys(row);
      await db.query(`INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(', ')}) VALUES (${columns.map((_, k) => `$${k + 1}`).join(', ')})`, Object.values(row));
      if (errorLog) written.errorLogs += 1;
      else written.spendLogs += 1;
    }
  }
  return written;
}
