// Writes each canonical event as one JSON line, to a file (appended) or to stdout ("-").
// Useful to see what tokenwatch reads, and to feed other tools.
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import type { CanonicalEvent } from '../model/events.ts';
import type { Sink } from './sink.ts';

export class JsonlSink implements Sink {
  readonly name = 'jsonl';
  private readonly out: NodeJS.WritableStream;
  private readonly file: WriteStream | undefined;

  constructor(target: string) {
    this.file = target === '-' ? undefined : createWriteStream(target, { flags: 'a' });
    this.out = this.file ?? process.stdout;
  }

  async write(events: readonly CanonicalEvent[]): Promise<void> {
    if (events.length === 0) return;
    const text = events.map((e) => JSON.stringify(e)).join('\n') + '\n';
    if (!this.out.write(text)) await once(this.out, 'drain');
  }

  async close(): Promise<void> {
    if (this.file) {
      this.file.end();
      await once(this.file, 'close');
    }
  }
}
