// `run` waits for a source it cannot use yet (its database is down, or its tables are not
// created yet): its planned streams show as failing with the reason on /metrics and /readyz,
// and connecting is retried with capped exponential backoff and jitter until it succeeds.
import type { Logger } from '../log.ts';
import type { NamedSource } from '../sources/adapter.ts';
import { CONNECT_BACKOFF, retryDelayMs } from './backoff.ts';
import { SourceUnavailable, plannedStatuses } from './source-connect.ts';
import type { StreamStatus } from './status.ts';

interface PendingSource {
  config: NamedSource;
  statuses: StreamStatus[];
  failures: number;
  missingTables: boolean;
  timer?: NodeJS.Timeout;
}

export interface SourceRetryOptions {
  logger: Logger;
  now(): number;
  /** Connects the source (and its parts); throws SourceUnavailable while it cannot be used. */
  connect(config: NamedSource): Promise<void>;
  /** Another error ended the wait: the process cannot run. */
  onFatal(error: Error): void;
  /** After each attempt, failed or not (the set of sources in use may have changed). */
  afterAttempt(): void;
}

export class SourceRetry {
  private readonly pending: PendingSource[] = [];
  private readonly options: SourceRetryOptions;
  private stopped = false;

  constructor(options: SourceRetryOptions) {
    this.options = options;
  }

  /** Starts waiting for `config`, which just failed with `error`. */
  waitFor(config: NamedSource, error: SourceUnavailable): void {
    const pending: PendingSource = { config, statuses: plannedStatuses(config), failures: 0, missingTables: error.missingTables };
    this.pending.push(pending);
    this.failed(pending, error);
  }

  get size(): number {
    return this.pending.length;
  }

  statuses(): StreamStatus[] {
    return this.pending.flatMap((p) => p.statuses);
  }

  /**
   * Sources chosen automatically whose tables are missing are skipped once another source is
   * in use (that database simply is not that kind of source).
   */
  dropMissingTables(): void {
    for (const pending of this.pending.filter((p) => p.missingTables)) {
      this.remove(pending);
      this.options.logger.info({ source: pending.config.name }, 'source skipped: its tables are not in the database');
    }
  }

  stop(): void {
    this.stopped = true;
    for (const pending of this.pending) clearTimeout(pending.timer);
  }

  private remove(pending: PendingSource): void {
    clearTimeout(pending.timer);
    this.pending.splice(this.pending.indexOf(pending), 1);
  }

  private failed(pending: PendingSource, error: SourceUnavailable): void {
    pending.failures += 1;
    pending.missingTables = error.missingTables;
    const now = this.options.now();
    for (const status of pending.statuses) {
      status.polls += 1;
      status.lastPollStartedAt = now;
      status.lastError = error.message;
    }
    const delay = retryDelayMs(pending.failures, CONNECT_BACKOFF);
    this.options.logger.error({ source: pending.config.name, error: error.message, retryInMs: delay }, 'source not available; retrying');
    pending.timer = setTimeout(() => void this.retry(pending), delay);
  }

  private async retry(pending: PendingSource): Promise<void> {
    if (this.stopped) return;
    try {
      await this.options.connect(pending.config);
    } catch (error) {
      if (this.stopped) return;
      if (error instanceof SourceUnavailable) {
        this.failed(pending, error);
        this.options.afterAttempt();
        return;
      }
      this.remove(pending);
      this.options.onFatal(error as Error);
      return;
    }
    this.remove(pending);
    if (this.stopped) return;
    this.options.logger.info({ source: pending.config.name, afterAttempts: pending.failures + 1 }, 'source connected');
    this.options.afterAttempt();
  }
}
