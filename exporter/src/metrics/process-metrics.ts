// The exporter's own process, as node_exporter-style clients expose it: CPU, resident memory,
// start time, the V8 heap and the memory held outside it, and the Node.js event loop's delay
// (a stalled loop delays every scrape and poll). Started by the long-running job, not at
// import time. The heap figures tell an RSS that grows apart: JavaScript objects kept alive
// (heap used grows) against native memory (the embedded ClickHouse engine, buffers), which
// only RSS shows.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';

export interface ProcessSample {
  cpuSeconds: number;
  residentBytes: number;
  /** V8 heap: bytes used by live and not yet collected objects, and bytes the heap has reserved. */
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Memory of C++ objects bound to JavaScript objects (Buffers included), outside the V8 heap. */
  externalBytes: number;
  startTimeSeconds: number;
  /** p99 of the event loop's delay over the last completed window (null before the first). */
  eventLoopDelayP99Seconds: number | null;
}

/** Event-loop delay is summarised over windows of this length (independent of who scrapes). */
const WINDOW_MS = 30_000;

export class ProcessMetrics {
  private readonly histogram: ReturnType<typeof monitorEventLoopDelay>;
  private readonly timer: NodeJS.Timeout;
  private lastP99: number | null = null;
  private readonly startTimeSeconds = Math.round((Date.now() - process.uptime() * 1000) / 1000);

  constructor(windowMs = WINDOW_MS) {
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.lastP99 = this.histogram.percentile(99) / 1e9;
      this.histogram.reset();
    }, windowMs);
    this.timer.unref();
  }

  sample(): ProcessSample {
    const cpu = process.cpuUsage();
    const memory = process.memoryUsage();
    return {
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      residentBytes: residentBytes(),
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      externalBytes: memory.external,
      startTimeSeconds: this.startTimeSeconds,
      eventLoopDelayP99Seconds: this.lastP99,
    };
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}

/** VmRSS from /proc (what `ps` and the OOM killer see), else Node's own figure. */
function residentBytes(): number {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb) return Number(kb) * 1024;
  } catch {
    // not Linux
  }
  return process.memoryUsage.rss();
}
