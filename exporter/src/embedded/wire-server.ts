// The PostgreSQL wire protocol on a loopback port, for several client connections, over one
// PGlite instance (one PostgreSQL session). Why not @electric-sql/pglite-socket's server: it
// schedules single protocol messages, so the Parse / Bind / Execute / Sync of two connections
// interleave in the one session (the second Parse replaces the first's unnamed statement:
// "unnamed prepared statement does not exist"), and after a failed message its queue stays
// stuck for good, so a shutdown waits forever (electric-sql/pglite issue 1046, open). Here a
// connection's messages run as whole batches, up to a Sync, a simple Query or a Flush, one
// batch at a time; while a connection has a transaction open, only its batches run.
import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

// Requests a client sends before its startup message (no type byte; a code after the length).
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** Frontend messages after which the client waits for the server: a batch ends there. */
const BATCH_ENDS = new Set(['S', 'Q', 'H', 'c', 'f']);
const TERMINATE = 'X'.charCodeAt(0);

interface Connection {
  socket: Socket;
  buffer: Buffer;
  started: boolean;
  /** Messages of the batch being received. */
  pending: Uint8Array[];
  closed: boolean;
}

/** A batch of one connection's messages, or the ROLLBACK of a transaction its closed connection left open. */
type Batch = { connection: Connection; messages: Uint8Array[] } | { connection: Connection; rollback: true };

export class PGliteWireServer {
  private server: Server | undefined;
  private readonly connections = new Set<Connection>();
  private queue: Batch[] = [];
  private running: Promise<void> | undefined;
  /** The connection whose transaction is open: only its batches run until it ends. */
  private owner: Connection | undefined;

  private readonly db: PGlite;

  constructor(db: PGlite) {
    this.db = db;
  }

  async listen(port: number, host = '127.0.0.1'): Promise<void> {
    await this.db.waitReady;
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** Closes every connection (rolling back what they left open) and stops listening. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const connection of this.connections) connection.socket.destroy();
    await closed;
    await this.running;
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const connection: Connection = { socket, buffer: Buffer.alloc(0), started: false, pending: [], closed: false };
    this.connections.add(connection);
    socket.on('data', (data: Buffer) => this.receive(connection, data));
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => this.drop(connection));
  }

  private receive(connection: Connection, data: Buffer): void {
    connection.buffer = connection.buffer.length === 0 ? data : Buffer.concat([connection.buffer, data]);
    for (;;) {
      const buffer = connection.buffer;
      if (!connection.started) {
        if (buffer.length < 8 || buffer.length < buffer.readInt32BE(0)) return;
        const length = buffer.readInt32BE(0);
        const code = buffer.readInt32BE(4);
        const message = new Uint8Array(buffer.subarray(0, length));
        connection.buffer = buffer.subarray(length);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          connection.socket.write('N'); // not supported: the client goes on in plain text
          continue;
        }
        if (code === CANCEL_REQUEST) {
          connection.socket.end(); // not supported (a query cannot be interrupted in PGlite)
          return;
        }
        connection.started = true;
        this.enqueue({ connection, messages: [message] });
        continue;
      }
      if (buffer.length < 5 || buffer.length < 1 + buffer.readInt32BE(1)) return;
      const length = 1 + buffer.readInt32BE(1);
      const type = buffer[0]!;
      connection.buffer = buffer.subarray(length);
      if (type === TERMINATE) {
        connection.socket.end();
        return;
      }
      connection.pending.push(new Uint8Array(buffer.subarray(0, length)));
      if (BATCH_ENDS.has(String.fromCharCode(type))) {
        this.enqueue({ connection, messages: connection.pending });
        connection.pending = [];
      }
    }
  }

  private drop(connection: Connection): void {
    connection.closed = true;
    this.connections.delete(connection);
    this.queue = this.queue.filter((batch) => batch.connection !== connection);
    if (this.owner === connection) this.enqueue({ connection, rollback: true });
  }

  private enqueue(batch: Batch): void {
    this.queue.push(batch);
    this.running ??= this.run().finally(() => (this.running = undefined));
  }

  private async run(): Promise<void> {
    for (;;) {
      const index = this.owner ? this.queue.findIndex((batch) => batch.connection === this.owner) : 0;
      if (index < 0 || this.queue.length === 0) return;
      const [batch] = this.queue.splice(index, 1);
      await this.execute(batch!);
    }
  }

  private async execute(batch: Batch): Promise<void> {
    const { connection } = batch;
    if ('rollback' in batch) {
      await this.db.exec('ROLLBACK').catch(() => undefined);
    } else if (!connection.closed) {
      const socket = connection.socket;
      try {
        await this.db.runExclusive(async () => {
          for (const message of batch.messages) {
            await this.db.execProtocolRawStream(message, { onRawData: (data) => void (socket.writable && socket.write(Buffer.from(data))) });
          }
        });
      } catch {
        // PGlite answers SQL errors on the wire itself; an exception is its own failure: this
        // connection ends (its client sees the error), the others go on.
        socket.destroy();
      }
    }
    this.owner = this.db.isInTransaction() ? connection : undefined;
    // A connection that closed while its transaction was open: roll it back now.
    if (this.owner?.closed && !this.queue.some((b) => b.connection === this.owner && 'rollback' in b)) this.queue.unshift({ connection: this.owner, rollback: true });
  }
}
