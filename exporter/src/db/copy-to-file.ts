// COPY … TO STDOUT into a file, the protocol's framing stripped as the bytes arrive.
//
// PostgreSQL sends one CopyData message per row. pg-copy-streams turns them into a Readable
// stream, slicing and concatenating a buffer per row: at a million rows that garbage was
// about a third of the relay's CPU (docs/benchmarks.md). Here the payloads are copied
// straight into large output blocks, so the relay allocates nothing per row. The connection's
// socket is taken over for the COPY only, the way pg-copy-streams does it: its data listener
// is set aside, and from the first message that is not part of the copy (CopyDone, or an
// ErrorResponse) the bytes go back to pg, which completes or fails the query as usual.
import { open } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { PoolClient } from 'pg';

const COPY_DATA = 0x64; // 'd'
const COPY_OUT_RESPONSE = 0x48; // 'H'
// Messages the server may send at any time; they carry nothing for the copy.
const ASYNCHRONOUS = new Set([0x4e /* NoticeResponse */, 0x53 /* ParameterStatus */, 0x41 /* NotificationResponse */]);
const BLOCK_BYTES = 4 << 20;
/** Blocks waiting for the disk before the socket is paused (memory stays bounded). */
const MAX_QUEUED_BLOCKS = 4;

type DataListener = (chunk: Buffer) => void;

/** Runs `sql` (a COPY … TO STDOUT) on `client` and writes its rows to `path`; returns the row count. */
export async function copyToFile(client: PoolClient, sql: string, path: string): Promise<number> {
  const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream;
  const listeners = socket.listeners('data') as DataListener[];
  if (listeners.length !== 1) throw new Error(`copyToFile: expected pg's one data listener on the socket, found ${listeners.length}`);
  const pgListener = listeners[0]!;
  const file = await open(path, 'w');
  // Blocks are reused once written: allocating one per 4 MiB of rows made V8 run a full
  // garbage collection every few chunks (external memory pressure).
  const free: Buffer[] = [];
  const take = (): Buffer => free.pop() ?? Buffer.allocUnsafe(BLOCK_BYTES);
  let block = take();
  let used = 0;
  const queue: Buffer[] = [];
  let writing: Promise<void> | undefined;
  let writeError: unknown;

  // One writer at a time, in order; restarted when blocks arrive after it finished.
  const pump = (): void => {
    if (writing !== undefined || queue.length === 0) return;
    writing = (async () => {
      while (queue.length > 0) {
        const next = queue.shift()!;
        await file.write(next);
        if (next.length === BLOCK_BYTES) free.push(next);
        if (queue.length < MAX_QUEUED_BLOCKS && socket.isPaused()) socket.resume();
      }
    })()
      .catch((error: unknown) => {
        writeError ??= error;
        queue.length = 0;
        socket.resume();
      })
      .finally(() => {
        writing = undefined;
        pump();
      });
  };
  const enqueue = (buffer: Buffer): void => {
    queue.push(buffer);
    if (queue.length >= MAX_QUEUED_BLOCKS) socket.pause();
    pump();
  };
  const append = (source: Buffer, start: number, end: number): void => {
    while (start < end) {
      const n = Math.min(end - start, BLOCK_BYTES - used);
      source.copy(block, used, start, start + n);
      used += n;
      start += n;
      if (used === BLOCK_BYTES) {
        enqueue(block);
        block = take();
        used = 0;
      }
    }
  };

  // Parser state: the message being read, its bytes still to come, a split header.
  let code = 0;
  let remaining = 0;
  let header: Buffer | null = null;
  let handedBack = false;
  const handBack = (rest: Buffer): void => {
    handedBack = true;
    socket.removeListener('data', onData);
    socket.on('data', pgListener);
    if (socket.isPaused()) socket.resume();
    pgListener(rest);
  };
  const onData: DataListener = (chunk) => {
    const buffer = header === null ? chunk : Buffer.concat([header, chunk]);
    header = null;
    let i = 0;
    while (i < buffer.length) {
      if (remaining === 0) {
        if (buffer.length - i < 5) {
          header = Buffer.from(buffer.subarray(i));
          return;
        }
        code = buffer[i]!;
        if (code !== COPY_DATA && code !== COPY_OUT_RESPONSE && !ASYNCHRONOUS.has(code)) {
          handBack(buffer.subarray(i));
          return;
        }
        remaining = buffer.readUInt32BE(i + 1) - 4;
        i += 5;
      }
      const n = Math.min(remaining, buffer.length - i);
      if (code === COPY_DATA) append(buffer, i, i + n);
      i += n;
      remaining -= n;
    }
  };

  socket.removeListener('data', pgListener);
  socket.on('data', onData);
  try {
    const result = await client.query(sql);
    if (used > 0) enqueue(block.subarray(0, used));
    while (writing) await writing;
    if (writeError !== undefined) throw writeError;
    return result.rowCount ?? 0;
  } finally {
    if (!handedBack) {
      socket.removeListener('data', onData);
      socket.on('data', pgListener);
    }
    if (socket.isPaused()) socket.resume();
    await file.close();
  }
}
