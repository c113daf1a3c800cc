// Structured logs (pino) on stderr: JSON lines, or one readable line per event (format text;
// format auto picks text on a terminal, JSON otherwise). stdout is left to commands' results.
import { pino, type Logger } from 'pino';
import { redactSecrets } from './config/load.ts';

export type { Logger };

const LEVEL_COLOURS: Record<string, string> = { debug: '\x1b[90m', info: '\x1b[36m', warn: '\x1b[33m', error: '\x1b[31m', fatal: '\x1b[31m' };

/** A line on the terminal that log lines must not print over: a progress bar. */
export interface TransientLine {
  /** The terminal it is on: only log lines to the same stream step around it. */
  stream: NodeJS.WritableStream;
  /** Erases the line, so that a log line can take its place. */
  clear(): void;
  /** Draws it again, below the log line. */
  redraw(): void;
}

let transientLine: TransientLine | undefined;

/** While a progress bar is on stderr, log lines go above it (undefined when it ends). */
export function setTransientLine(line: TransientLine | undefined): void {
  transientLine = line;
}

/** Writes that step around the progress bar on the same stream, if there is one. */
function aroundTransientLine(destination: NodeJS.WritableStream): NodeJS.WritableStream {
  return {
    write(text: string) {
      const line = transientLine?.stream === destination ? transientLine : undefined;
      line?.clear();
      const written = destination.write(text);
      line?.redraw();
      return written;
    },
  } as NodeJS.WritableStream;
}

export function createLogger(options: { level: string; format: 'auto' | 'json' | 'text'; destination?: NodeJS.WritableStream }): Logger {
  const terminalStream = options.destination ?? process.stderr;
  const destination = aroundTransientLine(terminalStream);
  const terminal = (terminalStream as NodeJS.WriteStream).isTTY === true;
  const format = options.format === 'auto' ? (terminal ? 'text' : 'json') : options.format;
  if (format === 'json') {
    return pino({ level: options.level, base: { service: 'tokenwatch' }, formatters: { level: (label) => ({ level: label }) } }, destination as pino.DestinationStream);
  }
  const stream = {
    write(line: string) {
      const { level, time, msg, service: _service, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const fields = Object.entries(rest)
        .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
        .join(' ');
      const label = String(level).toUpperCase().padEnd(5);
      const shown = terminal ? `${LEVEL_COLOURS[String(level)] ?? ''}${label}\x1b[0m` : label;
      destination.write(`${new Date(time as number).toISOString()} ${shown} ${String(msg)}${fields ? ` ${fields}` : ''}\n`);
    },
  };
  return pino({ level: options.level, base: { service: 'tokenwatch' }, formatters: { level: (label) => ({ level: label }) } }, stream);
}

/** Error text safe to log: connection strings in driver messages lose their passwords. */
export function errorText(error: unknown): string {
  return redactSecrets(error instanceof Error ? error.message : describeThrown(error));
}

/** Something thrown that is not an Error (a library's plain object): its message, else its JSON, never "[object Object]". */
function describeThrown(value: unknown): string {
  if (value !== null && typeof value === 'object') {
    const { message, code } = value as { message?: unknown; code?: unknown };
    if (typeof message === 'string' && message !== '') return typeof code === 'string' || typeof code === 'number' ? `${message} (${code})` : message;
    try {
      return JSON.stringify(value);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}
