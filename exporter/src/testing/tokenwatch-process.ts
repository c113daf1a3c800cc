// `tokenwatch` as a separate process, the way an operator runs it, for tests: its log lines,
// its HTTP endpoints, and how it ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';

const MAIN = new URL('../cli/main.ts', import.meta.url).pathname;

export interface TokenwatchProcess {
  child: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** The JSON log lines so far. */
  logs(): Record<string, unknown>[];
  /** Resolves with the exit code (null when killed by a signal) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** GET on the process's HTTP server; rejects when it does not answer. */
  get(path: string): Promise<{ status: number; text: string }>;
}

export function startTokenwatch(args: string[], env: Record<string, string>, listenAddress?: string): TokenwatchProcess {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env, ...(listenAddress ? { TOKENWATCH_LISTEN_ADDRESS: listenAddress } : {}) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    stderr: () => stderr,
    logs: () => stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
    async get(path) {
      const response = await fetch(`http://${listenAddress}${path}`, { signal: AbortSignal.timeout(5000) });
      return { status: response.status, text: await response.text() };
    },
  };
}

/** Polls `check` every `everyMs` until it returns true; throws naming `what` after `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000, everyMs = 100): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await Promise.resolve().then(check).catch(() => false)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** When a stream's checkpoint in `stateDir` was last written ('' when never). */
export function checkpointWrittenAt(stateDir: string, streamId: string): string {
  return new FileCheckpointStore(stateDir).load(streamId)?.updatedAt ?? '';
}

/**
 * Waits until the stream's checkpoint has been written again since `previous` (a value of
 * checkpointWrittenAt), then `extraMs` more: kill tests kill on observed progress, so every
 * killed run has done some work however loaded the machine is. Throws when the process
 * exits first.
 */
export async function afterCheckpoint(stateDir: string, streamId: string, previous: string, exited: Promise<unknown>, extraMs: number, timeoutMs = 120_000): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const started = Date.now();
  while (checkpointWrittenAt(stateDir, streamId) === previous) {
    if (gone) throw new Error(`the process exited before it wrote a checkpoint of ${streamId}`);
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for a checkpoint of ${streamId}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, extraMs));
}
