// The state directory must be a directory tokenwatch can write before anything starts: the
// embedded database, the embedded store and the checkpoints all live there, and an unusable
// one (a read-only mount, /proc, a file) made `run` spin in a retry loop that ignored SIGTERM.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from './load.ts';

/** Creates the state directory if needed and proves it writable; throws ConfigError (exit 2) naming the setting and the path. */
export function requireUsableStateDir(stateDir: string): void {
  const path = resolve(stateDir);
  const probe = join(path, `.tokenwatch-write-test-${process.pid}`);
  try {
    mkdirSync(path, { recursive: true });
    writeFileSync(probe, '');
    rmSync(probe, { force: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError([`stateDir (TOKENWATCH_STATE_DIR) ${path} is not a writable directory (${code}): set it to a directory tokenwatch can create files in`]);
  }
}
