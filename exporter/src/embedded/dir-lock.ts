// One process per embedded demo database: PGlite has no lock of its own, and a second process
// opening the same data directory died with "Aborted(). Build with -sASSERTIONS". The lock is a
// file holding the holder's PID, created exclusively; a file left by a process that no longer
// runs (kill -9) is taken over.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class DirectoryInUse extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `dir`/.lock for this process, or throws DirectoryInUse naming the process holding it. Returns the release. */
export function lockDirectory(dir: string, what: string): () => void {
  const file = join(dir, '.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      const holder = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new DirectoryInUse(`${what} in ${dir} is in use by process ${holder} (probably a running tokenwatch): stop it, or set TOKENWATCH_STATE_DIR to another directory`);
      }
      rmSync(file, { force: true });
    }
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    try {
      if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file, { force: true });
    } catch {
      // Already gone.
    }
  };
  process.once('exit', release);
  return release;
}
