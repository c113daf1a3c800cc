// Runs each stream's and snapshot's poll on its interval, at a fixed rate, with capped
// exponential backoff after failures; stop() cancels what is waiting and awaits what runs.
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import { pollBackoff, retryDelayMs } from './backoff.ts';

export class PollScheduler {
  private readonly logger: Logger;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  /** Polls `poll` every `intervalMs` until stop(); `id` names it in the logs. */
  every(id: string, intervalMs: number, poll: () => Promise<unknown>): void {
    let failures = 0;
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      const startedAt = Date.now();
      const run = poll();
      this.inFlight.add(run);
      let delay: number;
      try {
        await run;
        failures = 0;
        // A fixed rate: the next poll starts an interval after this one started (at once when it
        // took longer), so a row waits at most an interval plus one poll.
        delay = Math.max(0, startedAt + intervalMs - Date.now());
      } catch (error) {
        if (this.stopped) return;
        failures += 1;
        delay = retryDelayMs(failures, pollBackoff(intervalMs));
        this.logger.error({ stream: id, error: errorText(error), retryInMs: delay }, 'poll failed');
      } finally {
        this.inFlight.delete(run);
      }
      if (this.stopped) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void tick();
      }, delay);
      this.timers.add(timer);
    };
    void tick();
  }

  /** No poll starts after this; resolves when the polls in flight have ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
  }
}
