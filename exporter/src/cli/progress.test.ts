// The progress bar on a terminal: an ETA that reads as a duration, a display that keeps
// moving while no rows arrive, and log lines that go above the bar instead of through it.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { formatDuration, startProgress, type Progress } from './progress.ts';
import { createLogger } from '../log.ts';

/** A terminal for the bar: records what is written. */
function fakeTerminal(): Writable & { isTTY: boolean; columns: number; text(): string; cursorTo(): boolean; clearLine(): boolean; moveCursor(): boolean } {
  let written = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      written += chunk.toString();
      done();
    },
  }) as ReturnType<typeof fakeTerminal>;
  stream.isTTY = true;
  stream.columns = 200;
  stream.text = () => written;
  // The readline calls cli-progress makes on a TTY.
  stream.cursorTo = () => (stream.write('\r'), true);
  stream.clearLine = () => true;
  stream.moveCursor = () => true;
  return stream;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const strip = (text: string) => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ''); // eslint-disable-line no-control-regex -- terminal codes

describe('progress', () => {
  let progress: Progress | undefined;
  afterEach(() => progress?.stop());

  it('formats durations with carried parts (never "1m60s")', () => {
    expect(formatDuration(119.6)).toBe('2m 00s');
    expect(formatDuration(59.6)).toBe('1m 00s');
    expect(formatDuration(3599.7)).toBe('1h 00m');
    expect(formatDuration(7)).toBe('7s');
    expect(formatDuration(3 * 3600 + 5 * 60 + 9)).toBe('3h 05m');
  });

  it('redraws every second while no rows arrive, with the rate falling', async () => {
    const terminal = fakeTerminal();
    const logger = createLogger({ level: 'info', format: 'text', destination: terminal });
    progress = startProgress({ label: 'backfill', unit: 'rows', total: 1000, logger, bar: true, stream: terminal as unknown as NodeJS.WriteStream });
    progress.update(100, 'cnp/api_requests');
    await sleep(200);
    const rateNow = (text: string) => Number([...strip(text).matchAll(/\| (\d+) rows\/s/g)].at(-1)?.[1]);
    const first = rateNow(terminal.text());
    await sleep(2200);
    const later = rateNow(terminal.text());
    expect(first).toBeGreaterThan(later);
    expect(strip(terminal.text())).toMatch(/ETA \d+(m \d\ds|s)/);
  });

  it('puts a log line above the bar: the line is cleared first and the bar drawn again after it', () => {
    const terminal = fakeTerminal();
    const logger = createLogger({ level: 'info', format: 'text', destination: terminal });
    progress = startProgress({ label: 'backfill', unit: 'rows', total: 1000, logger, bar: true, stream: terminal as unknown as NodeJS.WriteStream });
    progress.update(10);
    const before = terminal.text().length;
    logger.warn('late rows delivered');
    const after = terminal.text().slice(before);
    // Cleared, the log line on its own line, then the bar again.
    expect(after.startsWith('\r\x1b[2K')).toBe(true);
    expect(after).toMatch(/WARN.*late rows delivered\n/);
    expect(strip(after.slice(after.indexOf('late rows delivered\n')))).toContain('backfill');
  });
});
