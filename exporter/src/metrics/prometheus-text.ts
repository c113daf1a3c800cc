// Prometheus text exposition (format 0.0.4) of metric families. Label sets are pre-rendered
// per series (families.ts), so a scrape is one pass of string building, written out in
// chunks; gzip when the scraper asks for it.
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGzip, constants, gzipSync } from 'node:zlib';
import type { Family } from './families.ts';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function formatNumber(value: number): string {
  if (Number.isFinite(value)) return String(value);
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? '+Inf' : '-Inf';
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Series per chunk of prometheusChunks: small strings instead of one of tens of megabytes. */
const SERIES_PER_CHUNK = 1000;

/**
 * The exposition text of `families`, in chunks of at most SERIES_PER_CHUNK series. A scrape
 * writes them to the socket as they come: with 100,000 series the text is ~13 MB, and
 * building it as one string cost more in garbage collection than in formatting.
 */
export function* prometheusChunks(families: readonly Family[]): Generator<string> {
  for (const family of families) {
    const { name, help, type, buckets } = family.def;
    let chunk = `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
    let inChunk = 0;
    const le = type === 'histogram' ? buckets!.map((b) => `le="${formatNumber(b)}"}`) : [];
    for (const s of family.series.values()) {
      if (type !== 'histogram') {
        chunk += `${name}${s.labelText} ${formatNumber(s.value)}\n`;
      } else {
        const open = s.labelText === '' ? '{' : `${s.labelText.slice(0, -1)},`;
        let cumulative = 0;
        for (let i = 0; i < le.length; i++) {
          cumulative += s.counts![i]!;
          chunk += `${name}_bucket${open}${le[i]} ${cumulative}\n`;
        }
        chunk += `${name}_bucket${open}le="+Inf"} ${s.count!}\n${name}_sum${s.labelText} ${formatNumber(s.sum!)}\n${name}_count${s.labelText} ${s.count!}\n`;
      }
      if (++inChunk === SERIES_PER_CHUNK) {
        yield chunk;
        chunk = '';
        inChunk = 0;
      }
    }
    if (chunk !== '') yield chunk;
  }
}

export function prometheusText(families: readonly Family[]): string {
  return [...prometheusChunks(families)].join('');
}

/** Characters of exposition written in one piece (above it, streamed). */
const ONE_PIECE = 4 * 1024 * 1024;

/**
 * Writes the exposition of `families` to `out` chunk by chunk, gzip-compressed when asked;
 * resolves when all is written and rejects, once, when it cannot be: a scraper that hangs up
 * in the middle (a scrape timeout, Prometheus stopping) destroys the response, and the
 * pipeline then stops reading the chunks, so nothing waits on a socket that is gone and no
 * rejection is left unhandled (which would end the process).
 */
export async function writeScrape(families: readonly Family[], out: NodeJS.WritableStream, gzipped: boolean): Promise<void> {
  // A scrape up to ONE_PIECE is written in one piece: streamed chunk by chunk, each chunk waits
  // for a turn of the event loop, and while the pipeline handles a burst of rows a 180 kB
  // scrape took 6 s that way (bench replication-burst). Larger ones are streamed, so memory
  // stays bounded.
  const chunks = prometheusChunks(families);
  const head: string[] = [];
  let size = 0;
  let next = chunks.next();
  for (; !next.done && size <= ONE_PIECE; next = chunks.next()) {
    head.push(next.value);
    size += next.value.length;
  }
  if (next.done) {
    const body = head.join('');
    // end() with the whole body: an HTTP response then carries its length, not chunks.
    out.end(gzipped ? gzipSync(body, { level: constants.Z_BEST_SPEED }) : body);
    await finished(out);
    return;
  }
  const rest = next.value;
  const all = Readable.from((function* () {
    yield* head;
    yield rest;
    yield* chunks;
  })());
  if (gzipped) await pipeline(all, createGzip({ level: constants.Z_BEST_SPEED }), out);
  else await pipeline(all, out);
}

