// A throwaway PostgreSQL cluster from the machine's own binaries, for tests: initdb and pg_ctl
// in a temporary directory, on a free loopback port, as the unprivileged `postgres` user when
// run as root (PostgreSQL refuses to run as root). Never a mock of pg.
import { execFileSync, execFile } from 'node:child_process';
import { mkdtempSync, chownSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { freePortOnLoopback as freePort } from '../embedded/ports.ts';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PgCluster {
  port: number;
  dataDir: string;
  /** Superuser URL of the given database. */
  url(database?: string): string;
  /** Stops the server the way an operator does (`pg_ctl stop -m fast`), keeping its data. */
  stopServer(): Promise<void>;
  /** Starts it again on the same port and data. */
  startServer(): Promise<void>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

/** The directory of the machine's PostgreSQL binaries (initdb, pg_ctl, pg_recvlogical). */
export function findBinDir(): string {
  const candidates = [
    ...(process.env.PG_BIN_DIR ? [process.env.PG_BIN_DIR] : []),
    ...(existsSync('/usr/lib/postgresql')
      ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)).map((v) => `/usr/lib/postgresql/${v}/bin`)
      : []),
  ];
  for (const dir of candidates) if (existsSync(join(dir, 'initdb'))) return dir;
  try {
    const initdb = execFileSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).trim();
    if (initdb) return initdb.replace(/\/initdb$/, '');
  } catch {
    // fall through
  }
  throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql package (apt-get install -y postgresql) or set PG_BIN_DIR');
}

export async function startPgCluster(options: { settings?: Record<string, string>; port?: number } = {}): Promise<PgCluster> {
  const bin = findBinDir();
  const asRoot = userInfo().uid === 0;
  const dataDir = mkdtempSync(join(tmpdir(), 'tokenwatch-pg-'));
  const socketDir = mkdtempSync(join(tmpdir(), 'tokenwatch-pgsock-'));
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dataDir, uid, gid);
    chownSync(socketDir, uid, gid);
  }
  const as = (command: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]] : [join(bin, command), args];
  const port = options.port ?? (await freePort());
  await run(...as('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']));
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${socketDir}'`,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '200',
    shared_buffers: '256MB',
    ...options.settings,
  };
  writeFileSync(
    join(dataDir, 'postgresql.auto.conf'),
    Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n',
  );
  if (asRoot) execFileSync('chown', ['postgres:postgres', join(dataDir, 'postgresql.auto.conf')]);
  const startServer = async () => {
    await run(...as('pg_ctl', ['-D', dataDir, '-l', join(dataDir, 'server.log'), '-w', '-t', '60', 'start']));
  };
  await startServer();
  return {
    port,
    dataDir,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async stopServer() {
      await run(...as('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']));
    },
    startServer,
    async stop() {
      await run(...as('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop'])).catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(socketDir, { recursive: true, force: true });
    },
  };
}
