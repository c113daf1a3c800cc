// Progress of long work (a backfill, a simulated history): a bar with rate and ETA on a
// terminal, a log line every 10 s otherwise (CI logs, `docker logs`, or --no-progress).
import { Presets, SingleBar } from 'cli-progress';
import { setTransientLine, type Logger } from '../log.ts';

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
    // Rate and ETA are the run's average, recomputed every second even when no rows arrive
    // (a long page): the bar never freezes on a stale estimate.
    const bar = new SingleBar(
      { format: `${options.label} {detail} |{bar}| {percentage}% | {value}/{total} ${options.unit} | {rate} ${options.unit}/s | ETA {etaText}`, stream, hideCursor: true },
      Presets.shades_classic,
    );
    let done = 0;
    let detail = '';
    const payload = () => {
      const perSecond = rate(done);
      return { detail, rate: perSecond, etaText: perSecond > 0 ? formatDuration(Math.max(0, total - done) / perSecond) : '?' };
    };
    bar.start(total, 0, payload());
    const refresh = setInterval(() => bar.update(done, payload()), 1000);
    refresh.unref();
    // Log lines go above the bar rather than through it.
    setTransientLine({ stream, clear: () => stream.write('\r\x1b[2K'), redraw: () => bar.render() });
    return {
      update(next, nextDetail = '') {
        done = next;
        detail = nextDetail;
        if (done > total) bar.setTotal((total = done));
        bar.update(done, payload());
      },
      setTotal(next) {
        bar.setTotal((total = Math.max(next, 1)));
      },
      stop: () => {
        clearInterval(refresh);
        setTransientLine(undefined);
        bar.stop();
      },
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

/** Seconds as "2h 05m", "4m 07s" or "12s" (never "1m60s": the parts are carried, not rounded apart). */
export function formatDuration(seconds: number): string {
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (h > 0) return `${h}h ${pad(m)}m`;
  if (m > 0) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}
