// pgoutput, parsed for what tokenwatch keeps of a change: the id of the row. The stream reads
// every changed row again by id (replication-rows.ts), so of an insert, update or delete only
// the id column is decoded; the other columns (a proxy's request and response bodies, often
// tens of kilobytes) are skipped over, never turned into strings. With the library's parser,
// which decodes and type-parses every column, that parsing was a tenth of the process's CPU at
// 10,000 rows/s. Every other message (relations, truncates, begin and commit) goes through
// pg-logical-replication's own parser (2.5.0, pinned exactly).
//
// With `streaming` (protocol version 2, PostgreSQL 14 and later) the server sends a large
// transaction's changes in blocks while it runs, instead of decoding it from disk after its
// commit (a 100k-row transaction arrived about 2 s after its commit here), and at its commit
// only the commit. Version 2 adds four stream messages, and the transaction id that prefixes
// every change inside a stream block: the id of its subtransaction, so that a Stream Abort of a
// subtransaction (ROLLBACK TO SAVEPOINT) discards only that one's changes.
import type { Client } from 'pg';
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';

export type StreamMessage =
  | { tag: 'stream_start'; xid: number; first: boolean }
  | { tag: 'stream_stop' }
  | { tag: 'stream_commit'; xid: number; commitEndLsn: string; commitTime: bigint }
  | { tag: 'stream_abort'; xid: number; subxid: number }
  /** A message that cannot be read: the stream fails with this error (a throw here would end the process). */
  | { tag: 'unreadable'; error: Error };

/** A change inside a stream block: the change and the (sub)transaction it belongs to. */
export type StreamedChange = Pgoutput.Message & { streamXid: number };

/** An LSN as the library prints it ("0000000A/0B0C0D0E"). */
function lsnAt(buffer: Buffer, offset: number): string {
  return `${buffer.readUInt32BE(offset).toString(16).padStart(8, '0')}/${buffer.readUInt32BE(offset + 4).toString(16).padStart(8, '0')}`.toUpperCase();
}

/** A relation and the position of the column its ids are read from. */
interface KnownRelation {
  relation: Pgoutput.MessageRelation;
  idIndex: number;
}

/**
 * The tuple at `offset` reduced to its id column, as `{ [column]: value }` (the value parsed as
 * the library would parse it); `end` is where the tuple ends. An unchanged TOASTed id (never
 * for a primary key) is left out.
 */
function readId(buffer: Buffer, offset: number, known: KnownRelation): { tuple: Record<string, unknown>; end: number } {
  const fields = buffer.readInt16BE(offset);
  let at = offset + 2;
  const tuple: Record<string, unknown> = {};
  for (let i = 0; i < fields; i++) {
    const kind = buffer[at++];
    if (kind === 0x74 || kind === 0x62) { // 't' text, 'b' binary: a length, then the value
      const size = buffer.readInt32BE(at);
      at += 4;
      if (i === known.idIndex) {
        const column = known.relation.columns[i]!;
        tuple[column.name] = kind === 0x74 ? (column.parser as (text: string) => unknown)(buffer.toString('utf8', at, at + size)) : buffer.subarray(at, at + size);
      }
      at += size;
    } else if (kind === 0x6e) { // 'n' null
      if (i === known.idIndex) tuple[known.relation.columns[i]!.name] = null;
    } else if (kind !== 0x75) { // 'u' unchanged TOAST: nothing follows
      throw new Error(`unknown pgoutput attribute kind ${String.fromCharCode(kind ?? 0)}`);
    }
  }
  return { tuple, end: at };
}

export class PgoutputIdsPlugin extends PgoutputPlugin {
  private readonly streaming: boolean;
  /** The id column of each table ("schema.table" -> column); otherwise its replica identity's first column. */
  private readonly keys: ReadonlyMap<string, string>;
  private readonly relations = new Map<number, KnownRelation>();
  private inBlock = false;

  constructor(options: { publication: string; keys: ReadonlyMap<string, string>; streaming: boolean }) {
    super({ protoVersion: options.streaming ? 2 : 1, publicationNames: [options.publication] });
    this.streaming = options.streaming;
    this.keys = options.keys;
  }

  override start(client: Client, slotName: string, lastLsn: string): Promise<unknown> {
    const options = [`proto_version '${this.options.protoVersion}'`, `publication_names '${this.options.publicationNames.join(',')}'`, ...(this.streaming ? [`streaming 'on'`] : [])];
    return client.query(`START_REPLICATION SLOT "${slotName}" LOGICAL ${lastLsn} (${options.join(', ')})`);
  }

  override parse(buffer: Buffer): Pgoutput.Message {
    // Called in the connection's data handler: an exception there would not reach the stream.
    try {
      return this.parseMessage(buffer) as Pgoutput.Message;
    } catch (error) {
      return { tag: 'unreadable', error: error as Error } satisfies StreamMessage as unknown as Pgoutput.Message;
    }
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
    // Inside a block every message has the (sub)transaction id after its tag.
    const body = this.inBlock ? 5 : 1;
    const change = this.change(buffer, body);
    const message = change ?? (this.inBlock ? super.parse(Buffer.concat([buffer.subarray(0, 1), buffer.subarray(5)])) : super.parse(buffer));
    if (message.tag === 'relation') this.remember(message);
    return this.inBlock ? { ...message, streamXid: buffer.readUInt32BE(1) } : message;
  }

  private remember(relation: Pgoutput.MessageRelation): void {
    const key = this.keys.get(`${relation.schema}.${relation.name}`) ?? relation.keyColumns[0];
    this.relations.set(relation.relationOid, { relation, idIndex: relation.columns.findIndex((c) => c.name === key) });
  }

  /** An insert, update or delete whose body starts at `at` (after the tag and any xid), or undefined for another message. */
  private change(buffer: Buffer, at: number): Pgoutput.Message | undefined {
    const tag = buffer[0];
    if (tag !== 0x49 && tag !== 0x55 && tag !== 0x44) return undefined;
    const known = this.relations.get(buffer.readUInt32BE(at));
    if (!known) throw new Error('pgoutput change of a relation not announced');
    const relation = known.relation;
    if (known.idIndex < 0) {
      throw new Error(`the changes of ${relation.schema}.${relation.name} have no column ${this.keys.get(`${relation.schema}.${relation.name}`) ?? '(no primary key)'} to take ids from: `
        + 'renamed or dropped at the source? Name the column under columns: on the source and restart; nothing from this change on is confirmed until then');
    }
    let next = buffer[at + 4];
    let offset = at + 5;
    let key: Record<string, unknown> | null = null;
    let old: Record<string, unknown> | null = null;
    // 'K' the old key, 'O' the old row (replica identity full), then for an update 'N' the new row.
    if (next === 0x4b || next === 0x4f) {
      const before = readId(buffer, offset, known);
      if (next === 0x4b) key = before.tuple;
      else old = before.tuple;
      if (tag === 0x44) return { tag: 'delete', relation, key, old };
      next = buffer[before.end];
      offset = before.end + 1;
    }
    if (next !== 0x4e) throw new Error(`unknown pgoutput submessage ${String.fromCharCode(next ?? 0)}`);
    const { tuple } = readId(buffer, offset, known);
    if (tag === 0x49) return { tag: 'insert', relation, new: tuple };
    // An id unchanged and TOASTed in the new row is the old row's.
    return { tag: 'update', relation, key, old, new: { ...(old ?? key ?? {}), ...tuple } };
  }
}
