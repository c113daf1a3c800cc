// Structured logs (pino): JSON lines by default, one readable line per event with format=text.
import { pino, type Logger } from 'pino';
import { redactSecrets } from './config/load.ts';

export type { Logger };

export function createLogger(options: { level: string; format: 'json' | 'text'; destination?: NodeJS.WritableStream }): Logger {
  const destination = options.destination ?? process.stderr;
  if (options.format === 'json') {
    return pino({ level: options.level, base: { service: 'tokenwatch' }, formatters: { level: (label) => ({ level: label }) } }, destination as pino.DestinationStream);
  }
  const stream = {
    write(line: string) {
      const { level, time, msg, service: _service, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const fields = Object.entries(rest)
        .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
        .join(' ');
      destination.write(`${new Date(time as number).toISOString()} ${String(level).toUpperCase().padEnd(5)} ${String(msg)}${fields ? ` ${fields}` : ''}\n`);
    },
  };
  return pino({ level: options.level, base: { service: 'tokenwatch' }, formatters: { level: (label) => ({ level: label }) } }, stream);
}

/** Error text safe to log: connection strings in driver messages lose their passwords. */
export function errorText(error: unknown): string {
  return redactSecrets(error instanceof Error ? error.message : String(error));
}
