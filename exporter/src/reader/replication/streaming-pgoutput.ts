// pgoutput with `streaming` (protocol version 2, PostgreSQL 14 and later). Without it, the
// server decodes a large transaction only once it commits, from the files it spilled to disk
// (a 100k-row transaction arrived about 2 s after its commit here); with it, the server sends
// the transaction's changes in blocks while it runs, and at its commit only the commit.
//
// pg-logical-replication (2.5.0, pinned exactly) parses protocol version 1 only, so this plugin
// adds what version 2 adds: the four stream messages, and the transaction id that prefixes every
// change inside a stream block (stripped here, the rest parsed by the library's parser). A
// change inside a block carries the id of its subtransaction: a Stream Abort of a subtransaction
// (ROLLBACK TO SAVEPOINT) discards only that one's changes.
import type { Client } from 'pg';
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';

export type StreamMessage =
  | { tag: 'stream_start'; xid: number; first: boolean }
  | { tag: 'stream_stop' }
  | { tag: 'stream_commit'; xid: number; commitEndLsn: string; commitTime: bigint }
  | { tag: 'stream_abort'; xid: number; subxid: number };

/** A change inside a stream block: the library's message and the (sub)transaction it belongs to. */
export type StreamedChange = Pgoutput.Message & { streamXid: number };

/** An LSN as the library prints it ("0000000A/0B0C0D0E"). */
function lsnAt(buffer: Buffer, offset: number): string {
  return `${buffer.readUInt32BE(offset).toString(16).padStart(8, '0')}/${buffer.readUInt32BE(offset + 4).toString(16).padStart(8, '0')}`.toUpperCase();
}

export class StreamingPgoutputPlugin extends PgoutputPlugin {
  private inBlock = false;

  constructor(publication: string) {
    super({ protoVersion: 2, publicationNames: [publication] });
  }

  override start(client: Client, slotName: string, lastLsn: string): Promise<unknown> {
    const options = [`proto_version '2'`, `publication_names '${this.options.publicationNames.join(',')}'`, `streaming 'on'`];
    return client.query(`START_REPLICATION SLOT "${slotName}" LOGICAL ${lastLsn} (${options.join(', ')})`);
  }

  override parse(buffer: Buffer): Pgoutput.Message {
    return this.parseMessage(buffer) as Pgoutput.Message;
  }

  private parseMessage(buffer: Buffer): Pgoutput.Message | StreamMessage | StreamedChange {
    switch (buffer[0]) {
      case 0x53: // 'S' Stream Start: xid, first-segment flag
        this.inBlock = true;
        return { tag: 'stream_start', xid: buffer.readUInt32BE(1), first: buffer[5] === 1 };
      case 0x45: // 'E' Stream Stop
        this.inBlock = false;
        return { tag: 'stream_stop' };
      case 0x63: // 'c' Stream Commit: xid, flags, commit LSN, end LSN, commit time (µs since 2000-01-01)
        return { tag: 'stream_commit', xid: buffer.readUInt32BE(1), commitEndLsn: lsnAt(buffer, 14), commitTime: buffer.readBigUInt64BE(22) + 946_684_800_000_000n };
      case 0x41: // 'A' Stream Abort: xid, subxid
        return { tag: 'stream_abort', xid: buffer.readUInt32BE(1), subxid: buffer.readUInt32BE(5) };
      default:
        break;
    }
    if (!this.inBlock) return super.parse(buffer);
    // Inside a block every message has the (sub)transaction id after its tag.
    const streamXid = buffer.readUInt32BE(1);
    const message = super.parse(Buffer.concat([buffer.subarray(0, 1), buffer.subarray(5)]));
    return { ...message, streamXid };
  }
}
