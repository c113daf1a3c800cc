// Progress of long work (a backfill, a simulated history): a bar with rate and ETA on a
// terminal, a log line every 10 s otherwise (CI logs, `docker logs`, or --no-progress).
import { Presets, SingleBar } from 'cli-progress';
import type { Logger } from '../log.ts';

export interface Progress {
  /** `done` of the total so far; `detail` names what is being worked on. */
  update(done: number, detail?: string): void;
  /** A better estimate of the total. */
  setTotal(total: number): void;
  stop(): void;
}

const LOG_EVERY_MS = 10_000;

export function startProgress(options: { label: string; unit: string; total: number; logger: Logger; bar: boolean; stream?: NodeJS.WriteStream }): Progress {
  const stream = options.stream ?? process.stderr;
  const started = Date.now();
  let total = Math.max(options.total, 1);
  const rate = (done: number) => Math.round(done / Math.max((Date.now() - started) / 1000, 0.001));
  if (options.bar && stream.isTTY === true) {
    const bar = new SingleBar(
      { format: `${options.label} {detail} |{bar}| {percentage}% | {value}/{total} ${options.unit} | {rate} ${options.unit}/s | ETA {eta_formatted}`, stream, hideCursor: true, etaBuffer: 50 },
      Presets.shades_classic,
    );
    bar.start(total, 0, { detail: '', rate: 0 });
    return {
      update(done, detail = '') {
        if (done > total) bar.setTotal((total = done));
        bar.update(done, { detail, rate: rate(done) });
      },
      setTotal(next) {
        bar.setTotal((total = Math.max(next, 1)));
      },
      stop: () => bar.stop(),
    };
  }
  let lastLog = Date.now();
  return {
    update(done, detail) {
      if (Date.now() - lastLog < LOG_EVERY_MS) return;
      lastLog = Date.now();
      const perSecond = rate(done);
      options.logger.info({ done, total, unit: options.unit, perSecond, etaSeconds: perSecond > 0 ? Math.round(Math.max(0, total - done) / perSecond) : null, detail }, `${options.label} progress`);
    },
    setTotal(next) {
      total = Math.max(next, 1);
    },
    stop() {},
  };
}
