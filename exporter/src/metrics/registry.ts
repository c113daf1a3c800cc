// Turns canonical events into metric series and keeps them right across restarts.
//
// Counters and histograms from append-only streams are kept per stream and saved in that
// stream's checkpoint, in the same atomic write as the reader's position. /metrics shows a
// page's increments only once that checkpoint is durable. After a crash the counters come
// back exactly as they were when the last handled page was checkpointed, which is never less
// than what was shown, and the pages after it are read again: every row is counted once,
// Prometheus sees no reset, no gap and no spike. Two exporters reading the same database
// from the same start count the same rows, so they report the same totals.
//
// Gauges from tables updated in place are replaced wholesale on every snapshot read.
import { METRICS, type MetricDef, type MetricKey } from './catalog.ts';
import { Family, mergeInto, observeBucketedInto, observeInto, type BucketedObservations, type SavedSeries, type Series } from './families.ts';
import { CardinalityGuard, DEFAULT_LIMITS, safeLabelValues, type CardinalityLimits } from './cardinality.ts';
import type { CanonicalEvent, RequestEvent } from '../model/events.ts';
import { amountsOf, increase, type RequestAmounts } from '../model/row-versions.ts';
import type { SinkStatus, StreamStatus } from '../pipeline/status.ts';
import type { QualityCount } from '../quality/row-quality.ts';
import type { ProcessSample } from './process-metrics.ts';

export type SavedMetrics = Partial<Record<MetricKey, SavedSeries[]>>;

/** The durable metrics, recorded from append-only streams. */
const STREAM_METRICS = [
  'tokenUsage', 'operationDuration', 'timeToFirstToken', 'requests', 'tokens', 'cost', 'costEstimate', 'costUnknown', 'errors',
  'subtaskRequests', 'toolCalls', 'rateLimitWarnings', 'messages', 'conversationsStarted', 'activities', 'voiceSessionSeconds',
] as const satisfies readonly MetricKey[];

/**
 * Requests that share every label value, summed: what a bulk backfill computes with one
 * GROUP BY in ClickHouse instead of handing each request to recordStream. Recording a group
 * gives the same series as recording its requests one by one.
 */
export interface RequestGroup {
  source: string;
  tenant: string;
  model: string;
  operation: string;
  provider: string;
  httpStatus: number | null;
  errorType: string | null;
  account: string | null;
  rateLimitStatus: string | null;
  requests: number;
  subtaskRequests: number;
  toolCalls: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  /** The list-price estimate, and the requests without a list price. */
  costEstimateUsd: number;
  costUnknown: number;
  /** Histograms, bucketed by the catalog's boundaries of each metric. */
  inputTokenUsage: BucketedObservations;
  outputTokenUsage: BucketedObservations;
  /** Seconds; requests without a duration are not in it. */
  duration: BucketedObservations;
  timeToFirstToken: BucketedObservations;
  /** Latest request start, epoch milliseconds. */
  lastStartedAt: number;
}

/**
 * What a group of other events (messages, conversations, activities) adds to one counter, as
 * the bulk backfill computes it in ClickHouse; recording it gives the same series as
 * recordStream() of the events.
 */
export interface CounterGroup {
  metric: MetricKey;
  labels: string[];
  value: number;
}

/** The labels of a request (or of a group of requests) that its counters go by. */
type RequestLabels = Pick<RequestGroup, 'source' | 'tenant' | 'model' | 'httpStatus' | 'errorType' | 'account' | 'rateLimitStatus'>;
/** What the counters of one request or a group of them add. */
type RequestCounts = Pick<RequestGroup, 'requests' | 'subtaskRequests' | 'toolCalls' | 'inputTokens' | 'outputTokens' | 'cacheReadTokens' | 'cacheWriteTokens' | 'costUsd' | 'costEstimateUsd' | 'costUnknown'>;

export interface ProbeResult {
  name: string;
  kind: string;
  up: boolean;
  durationSeconds: number;
}

export interface RegistryOptions {
  limits?: CardinalityLimits;
  /** Limit of the rolling 5-hour output-token window per account. */
  accountWindowLimit?: number;
  now?: () => number;
}

const ACTIVE_TENANT_WINDOW_MS = 5 * 60_000;

const STATUS_CLASSES = ['2xx', '4xx', '5xx'] as const;

function statusClass(status: number | null): string {
  if (status === null || !Number.isFinite(status)) return 'unknown';
  return `${Math.floor(status / 100)}xx`;
}

function newFamilies(keys: readonly MetricKey[]): Map<MetricKey, Family> {
  return new Map(keys.map((k) => [k, new Family(METRICS[k] as MetricDef)]));
}

interface CachedSeries {
  stream: Series;
  total: Series;
  /** Labels the guard folded into "other" for this combination (counted on every update). */
  folded: string[];
}

type SeriesTree = Map<string, SeriesTree | CachedSeries>;

interface StreamMetrics {
  families: Map<MetricKey, Family>;
  /**
   * Metric, then each label value in turn -> series, so a repeated combination skips the
   * guard. A tree, not one joined key: building and hashing a key string for each of the
   * fifteen series a request updates was a tenth of the process's CPU at 10,000 rows/s.
   */
  cache: Map<MetricKey, SeriesTree>;
  /** Combinations in the cache. */
  cached: number;
  /** The state in the last checkpoint written: what a failed poll rolls back to. */
  committed: SavedMetrics;
  /**
   * Increments recorded since that checkpoint, by the total series they go to: added to the
   * totals (what /metrics shows) when the next checkpoint is durable.
   */
  pending: Map<Series, Series>;
}

export class MetricsRegistry {
  readonly guard: CardinalityGuard;
  private readonly accountWindowLimit: number;
  private readonly now: () => number;
  /** Sum over streams, updated with every event (what /metrics shows). */
  private readonly totals = newFamilies(STREAM_METRICS);
  private readonly streams = new Map<string, StreamMetrics>();
  private readonly snapshotGauges = new Map<string, Map<MetricKey, Family>>();
  private readonly tenantsSeen = new Map<string, Map<string, number>>();

  constructor(options: RegistryOptions = {}) {
    this.guard = new CardinalityGuard(options.limits ?? DEFAULT_LIMITS);
    this.accountWindowLimit = options.accountWindowLimit ?? 140_000;
    this.now = options.now ?? Date.now;
  }

  private stream(streamId: string): StreamMetrics {
    let entry = this.streams.get(streamId);
    if (!entry) this.streams.set(streamId, (entry = { families: newFamilies(STREAM_METRICS), cache: new Map(), cached: 0, committed: {}, pending: new Map() }));
    return entry;
  }

  /** Restores a stream's counters from its checkpoint (before its first poll). */
  restoreStream(streamId: string, saved: SavedMetrics | undefined, addToTotals = true): void {
    if (!saved) return;
    const entry = this.stream(streamId);
    for (const key of STREAM_METRICS) {
      const series = saved[key];
      if (!series) continue;
      const family = entry.families.get(key)!;
      family.restore(series);
      for (const [values] of series) this.guard.remember(family.def.name, family.def.labels, values);
      if (addToTotals) mergeInto(this.totals.get(key)!, restoredOnly(family.def, series));
    }
    entry.committed = saved;
  }

  /** The state to store in the stream's next checkpoint. */
  saveStream(streamId: string): SavedMetrics {
    const entry = this.stream(streamId);
    const saved: SavedMetrics = {};
    for (const [key, family] of entry.families) if (family.series.size > 0) saved[key] = family.save();
    return saved;
  }

  /** Called once the checkpoint holding `saved` is durable: its increments become visible. */
  committed(streamId: string, saved: SavedMetrics): void {
    const entry = this.stream(streamId);
    entry.committed = saved;
    for (const [total, delta] of entry.pending) {
      if (delta.counts) observeBucketedInto(total, { counts: delta.counts, sum: delta.sum!, count: delta.count! });
      else total.value += delta.value;
    }
    entry.pending.clear();
  }

  /** A poll failed: forget what it recorded after the last checkpoint (its rows will be read again). */
  rollbackStream(streamId: string): void {
    // The totals hold committed increments only: nothing to take back there.
    const committed = this.stream(streamId).committed;
    this.streams.delete(streamId);
    this.restoreStream(streamId, committed, false);
  }

  /** The increments of `total` waiting for the stream's next checkpoint. */
  private pendingFor(entry: StreamMetrics, total: Series): Series {
    let delta = entry.pending.get(total);
    if (!delta) {
      delta = { values: total.values, attributes: total.attributes, labelText: total.labelText, value: 0 };
      if (total.counts) {
        delta.counts = new Array<number>(total.counts.length).fill(0);
        delta.sum = 0;
        delta.count = 0;
      }
      entry.pending.set(total, delta);
    }
    return delta;
  }

  private series(entry: StreamMetrics, key: MetricKey, unsafeValues: string[]): CachedSeries {
    const def = METRICS[key] as MetricDef;
    // Made safe (control characters, length) before the cache is keyed by them.
    const changed: number[] = [];
    const values = safeLabelValues(unsafeValues, changed);
    let node = entry.cache.get(key);
    if (!node) entry.cache.set(key, (node = new Map()));
    for (let i = 0; i < values.length - 1; i++) {
      let child = node.get(values[i]!) as SeriesTree | undefined;
      if (!child) node.set(values[i]!, (child = new Map()));
      node = child;
    }
    const last = values[values.length - 1] ?? '';
    let cached = node.get(last) as CachedSeries | undefined;
    if (!cached) {
      const folded: string[] = [];
      const admitted = this.guard.admit(def.name, def.labels, values, folded);
      cached = { stream: entry.families.get(key)!.get(admitted), total: this.totals.get(key)!.get(admitted), folded };
      node.set(last, cached);
      entry.cached += 1;
    } else {
      for (const label of cached.folded) this.guard.fold(def.name, label);
    }
    for (const i of changed) this.guard.shorten(def.name, def.labels[i]!);
    return cached;
  }

  private record(entry: StreamMetrics, key: MetricKey, values: string[], value: number, histogram: boolean): readonly string[] {
    const cached = this.series(entry, key, values);
    if (histogram) {
      const buckets = (METRICS[key] as MetricDef).buckets!;
      observeInto(cached.stream, buckets, value);
      observeInto(this.pendingFor(entry, cached.total), buckets, value);
    } else {
      cached.stream.value += value;
      this.pendingFor(entry, cached.total).value += value;
    }
    return cached.stream.values;
  }

  private recordBucketed(entry: StreamMetrics, key: MetricKey, values: string[], observations: BucketedObservations): void {
    if (observations.count === 0) return;
    const cached = this.series(entry, key, values);
    observeBucketedInto(cached.stream, observations);
    observeBucketedInto(this.pendingFor(entry, cached.total), observations);
  }

  /** Records the events of one page of an append-only stream. */
  recordStream(streamId: string, events: readonly CanonicalEvent[]): void {
    const entry = this.stream(streamId);
    for (const event of events) {
      if (event.kind === 'request') this.recordRequest(entry, event);
      else if (event.kind === 'message') this.record(entry, 'messages', [event.source, event.tenant, event.role], 1, false);
      else if (event.kind === 'conversation') this.record(entry, 'conversationsStarted', [event.source, event.tenant, event.channel], 1, false);
      else if (event.kind === 'activity') {
        this.record(entry, 'activities', [event.source, event.tenant, event.activityType, event.status], 1, false);
        if (event.activityType === 'voice_session_finished' && event.durationSeconds !== null) {
          this.record(entry, 'voiceSessionSeconds', [event.source, event.tenant], event.durationSeconds, false);
        }
      }
    }
  }

  /**
   * Records revisions of requests delivered before (model/row-versions.ts): only the increase
   * of each additive amount, under the request's labels as they are now; no request is added.
   */
  recordRevisions(streamId: string, revisions: readonly { event: CanonicalEvent; previous: RequestAmounts | null }[]): void {
    const entry = this.stream(streamId);
    for (const { event, previous } of revisions) {
      if (event.kind !== 'request') continue;
      const grown = increase(amountsOf(event), previous);
      const base = [event.source, event.tenant, event.model];
      if (grown.inputTokens > 0) this.record(entry, 'tokens', [...base, 'input'], grown.inputTokens, false);
      if (grown.outputTokens > 0) this.record(entry, 'tokens', [...base, 'output'], grown.outputTokens, false);
      if (grown.cacheReadTokens > 0) this.record(entry, 'tokens', [...base, 'cache_read'], grown.cacheReadTokens, false);
      if (grown.cacheWriteTokens > 0) this.record(entry, 'tokens', [...base, 'cache_creation'], grown.cacheWriteTokens, false);
      if (grown.costUsd > 0) this.record(entry, 'cost', base, grown.costUsd, false);
      if (grown.costEstimateUsd > 0) this.record(entry, 'costEstimate', base, grown.costEstimateUsd, false);
    }
  }

  private recordRequest(entry: StreamMetrics, e: RequestEvent): void {
    this.recordCounters(entry, e, {
      requests: 1, subtaskRequests: e.isSubtask ? 1 : 0, toolCalls: e.toolCalls, inputTokens: e.inputTokens, outputTokens: e.outputTokens,
      cacheReadTokens: e.cacheReadTokens, cacheWriteTokens: e.cacheWriteTokens, costUsd: e.costUsd ?? 0,
      costEstimateUsd: e.costEstimateUsd ?? 0, costUnknown: e.costEstimateUsd === null ? 1 : 0,
    });
    const genai = [e.operation, e.provider, e.model, e.tenant];
    this.record(entry, 'tokenUsage', [...genai, 'input'], e.inputTokens, true);
    this.record(entry, 'tokenUsage', [...genai, 'output'], e.outputTokens, true);
    if (e.durationMs !== null) this.record(entry, 'operationDuration', [...genai, e.errorType ?? ''], e.durationMs / 1000, true);
    if (e.timeToFirstTokenMs !== null) this.record(entry, 'timeToFirstToken', genai, e.timeToFirstTokenMs / 1000, true);
    this.seen(e.source, e.tenant, Date.parse(e.startedAt));
  }

  /** The counters of requests that share their labels: one request, or a group of them (bulk). */
  private recordCounters(entry: StreamMetrics, r: RequestLabels, n: RequestCounts): void {
    const base = [r.source, r.tenant, r.model];
    this.recordRequestsTotal(entry, base, statusClass(r.httpStatus), n.requests);
    this.record(entry, 'tokens', [...base, 'input'], n.inputTokens, false);
    this.record(entry, 'tokens', [...base, 'output'], n.outputTokens, false);
    this.record(entry, 'tokens', [...base, 'cache_read'], n.cacheReadTokens, false);
    this.record(entry, 'tokens', [...base, 'cache_creation'], n.cacheWriteTokens, false);
    this.record(entry, 'cost', base, n.costUsd, false);
    if (n.costEstimateUsd > 0) this.record(entry, 'costEstimate', base, n.costEstimateUsd, false);
    if (n.costUnknown > 0) this.record(entry, 'costUnknown', base, n.costUnknown, false);
    if (r.errorType !== null) this.record(entry, 'errors', [...base, r.errorType], n.requests, false);
    if (n.subtaskRequests > 0) this.record(entry, 'subtaskRequests', [r.source, r.tenant], n.subtaskRequests, false);
    if (n.toolCalls > 0) this.record(entry, 'toolCalls', base, n.toolCalls, false);
    if (r.rateLimitStatus !== null && r.rateLimitStatus !== 'allowed') {
      this.record(entry, 'rateLimitWarnings', [r.source, r.tenant, r.account ?? '', r.rateLimitStatus], n.requests, false);
    }
  }

  /** requests_total, with every status class of a tenant and model present from its first request. */
  private recordRequestsTotal(entry: StreamMetrics, base: string[], cls: string, requests: number): void {
    const cachedBefore = entry.cached;
    const admitted = this.record(entry, 'requests', [...base, cls], requests, false);
    // Every status class of a tenant and model exists from its first request, at 0: a 5xx
    // series that appeared only with the first failure would hide that failure from rate().
    // (Done once per new combination, not per request.)
    if (entry.cached > cachedBefore) {
      for (const other of STATUS_CLASSES) {
        if (other === cls) continue;
        const values = [...admitted.slice(0, 3), other];
        this.guard.remember(METRICS.requests.name, METRICS.requests.labels, values);
        entry.families.get('requests')!.add(values, 0);
        this.totals.get('requests')!.add(values, 0);
      }
    }
  }

  private seen(source: string, tenant: string, startedAt: number): void {
    let seen = this.tenantsSeen.get(source);
    if (!seen) this.tenantsSeen.set(source, (seen = new Map()));
    if (startedAt > (seen.get(tenant) ?? 0)) seen.set(tenant, startedAt);
  }

  /** Records requests summed by label values (bulk backfill): the same series as one by one. */
  recordRequestGroups(streamId: string, groups: readonly RequestGroup[]): void {
    const entry = this.stream(streamId);
    for (const g of groups) {
      this.recordCounters(entry, g, g);
      const genai = [g.operation, g.provider, g.model, g.tenant];
      this.recordBucketed(entry, 'tokenUsage', [...genai, 'input'], g.inputTokenUsage);
      this.recordBucketed(entry, 'tokenUsage', [...genai, 'output'], g.outputTokenUsage);
      this.recordBucketed(entry, 'operationDuration', [...genai, g.errorType ?? ''], g.duration);
      this.recordBucketed(entry, 'timeToFirstToken', genai, g.timeToFirstToken);
      this.seen(g.source, g.tenant, g.lastStartedAt);
    }
  }

  recordCounterGroups(streamId: string, groups: readonly CounterGroup[]): void {
    const entry = this.stream(streamId);
    for (const g of groups) this.record(entry, g.metric, g.labels, g.value, false);
  }

  /** Replaces the gauges of one snapshot query with those of its latest read. */
  recordSnapshot(snapshotId: string, events: readonly CanonicalEvent[]): void {
    const gauges = newFamilies([
      'quotaUsed', 'quotaLimit', 'quotaUtilisation', 'accountWindowTokens', 'accountWindowLimit',
      'agentStatus', 'agentActiveConversations', 'agentLastActivity', 'conversations', 'voiceSessionsActive',
    ]);
    const set = (key: MetricKey, values: string[], value: number) => {
      const def = METRICS[key] as MetricDef;
      gauges.get(key)!.add(this.guard.admit(def.name, def.labels, values), value);
    };
    const clientTotals = new Map<string, { source: string; client: string; resource: string; used: number; limit: number }>();
    for (const e of events) {
      if (e.kind === 'usage') {
        // agent '' marks a client without usage rows: only its total (0) is shown.
        if (e.agent !== '') set('quotaUsed', [e.source, e.client, e.agent, e.resource], e.used);
        const key = `${e.source}\u0001${e.client}\u0001${e.resource}`;
        const total = clientTotals.get(key) ?? { source: e.source, client: e.client, resource: e.resource, used: 0, limit: 0 };
        total.used += e.used;
        total.limit = Math.max(total.limit, e.limit);
        clientTotals.set(key, total);
      } else if (e.kind === 'agent') {
        for (const status of ['online', 'idle', 'offline']) set('agentStatus', [e.source, e.tenant, e.agent, status], e.status === status ? 1 : 0);
        set('agentActiveConversations', [e.source, e.tenant, e.agent], e.activeConversations);
        if (e.lastActivityAt !== null) set('agentLastActivity', [e.source, e.tenant, e.agent], Date.parse(e.lastActivityAt) / 1000);
      } else if (e.kind === 'voice_sessions') {
        set('voiceSessionsActive', [e.source, e.tenant], e.active);
      } else if (e.kind === 'conversation_stats') {
        set('conversations', [e.source, e.tenant, e.channel, e.status], e.conversations);
      } else if (e.kind === 'account_window') {
        set('accountWindowTokens', [e.source, e.account], e.outputTokens);
        set('accountWindowLimit', [e.source, e.account], this.accountWindowLimit);
      }
    }
    for (const t of clientTotals.values()) {
      set('quotaUsed', [t.source, t.client, '', t.resource], t.used);
      // A limit of 0 means unlimited: no limit and no utilisation series.
      if (t.limit > 0) {
        set('quotaLimit', [t.source, t.client, t.resource], t.limit);
        set('quotaUtilisation', [t.source, t.client, t.resource], t.used / t.limit);
      }
    }
    this.snapshotGauges.set(snapshotId, gauges);
  }

  /**
   * Every family to expose, in catalog order. Stream counters are the live totals; gauges
   * of the same metric from several snapshot queries are merged; self-metrics are computed
   * from the pipeline's state now.
   */
  collect(statuses: readonly StreamStatus[], quality: readonly QualityCount[], probes: readonly ProbeResult[], sinks: readonly SinkStatus[] = [], processSample?: ProcessSample & { version: string }): Family[] {
    const out = new Map<MetricKey, Family>();
    for (const [key, family] of this.totals) out.set(key, family);
    for (const gauges of this.snapshotGauges.values()) {
      for (const [key, family] of gauges) {
        if (family.series.size === 0) continue;
        let target = out.get(key);
        if (!target) out.set(key, (target = new Family(METRICS[key] as MetricDef)));
        mergeInto(target, family);
      }
    }
    const self = newFamilies([
      'activeTenants', 'rowsRead', 'rowsInvalid', 'sourceUp', 'lastSuccess', 'ingestLag', 'pollDuration', 'checkpointWatermark',
      'rowsLate', 'rowsRevised', 'rowsIncomplete', 'rowsDeleted', 'xminScans', 'replicationLag', 'replicationRetained', 'replicationLastMessage', 'replicationFallback', 'rowsBeyondSweepWindow', 'lateMaxDelay', 'pollInterval', 'maxCommitDelay', 'sweepWindow',
      'reconcileMissing', 'reconcileExtra', 'reconcileRejected', 'reconcileLastRun', 'reconcileDays', 'rowsReconciled', 'sinkUp', 'sinkFailures', 'sinkRowsRejected', 'probeUp', 'probeDuration', 'seriesOverflow', 'labelValuesShortened',
      'buildInfo', 'processCpu', 'processResident', 'heapUsed', 'heapTotal', 'externalMemory', 'processStart', 'eventLoopDelay',
    ]);
    const now = this.now();
    for (const [source, tenants] of this.tenantsSeen) {
      let active = 0;
      for (const seen of tenants.values()) if (now - seen <= ACTIVE_TENANT_WINDOW_MS) active += 1;
      self.get('activeTenants')!.set([source], active);
    }
    for (const s of statuses) {
      const labels = [s.source, s.table];
      self.get('rowsRead')!.set(labels, s.rowsRead);
      if (s.polls > 0) self.get('sourceUp')!.set(labels, s.lastError === null ? 1 : 0);
      if (s.lastSuccessAt !== null) {
        self.get('lastSuccess')!.set(labels, s.lastSuccessAt / 1000);
        self.get('ingestLag')!.set(labels, Math.max(0, now - (s.lastSuccessStartedAt ?? s.lastSuccessAt)) / 1000);
      }
      if (s.lastPollDurationMs !== null) self.get('pollDuration')!.set(labels, s.lastPollDurationMs / 1000);
      if (s.watermarkAt !== null) self.get('checkpointWatermark')!.set(labels, s.watermarkAt / 1000);
      if (s.intervalMs !== null) self.get('pollInterval')!.set(labels, s.intervalMs / 1000);
      if (s.kind === 'incremental') {
        self.get('rowsLate')!.set(labels, s.rowsLate);
        self.get('rowsRevised')!.set(labels, s.rowsRevised);
        self.get('rowsIncomplete')!.set(labels, s.rowsIncomplete);
        if (s.replication !== null) {
          const slot = [s.source, s.replication.slot];
          self.get('rowsDeleted')!.set(labels, s.rowsDeleted);
          self.get('xminScans')!.set(labels, s.xminScans);
          self.get('replicationLag')!.set(slot, s.replication.lagBytes);
          self.get('replicationRetained')!.set(slot, s.replication.retainedBytes);
          if (s.replication.lastMessageAt !== null) self.get('replicationLastMessage')!.set(slot, s.replication.lastMessageAt / 1000);
          self.get('replicationFallback')!.set(slot, s.replication.pollingFallback ? 1 : 0);
        }
        self.get('rowsBeyondSweepWindow')!.set(labels, s.rowsBeyondSweepWindow);
        self.get('lateMaxDelay')!.set(labels, s.lateMaxDelayMs / 1000);
        if (s.maxCommitDelayMs !== null) self.get('maxCommitDelay')!.set(labels, s.maxCommitDelayMs / 1000);
        if (s.sweepWindowMs !== null) self.get('sweepWindow')!.set(labels, s.sweepWindowMs / 1000);
        if (s.reconcile !== null) {
          self.get('reconcileMissing')!.set(labels, s.reconcile.missing);
          self.get('reconcileExtra')!.set(labels, s.reconcile.extra);
          self.get('reconcileRejected')!.set(labels, s.reconcile.rejected);
          self.get('reconcileLastRun')!.set(labels, s.reconcile.at / 1000);
          self.get('reconcileDays')!.set(labels, s.reconcile.days);
          self.get('rowsReconciled')!.set(labels, s.rowsReconciled);
        }
      }
    }
    for (const q of quality) {
      const slash = q.stream.indexOf('/');
      self.get('rowsInvalid')!.set([q.stream.slice(0, slash), q.stream.slice(slash + 1), q.reason, q.action], q.count);
    }
    for (const sink of sinks) {
      self.get('sinkUp')!.set([sink.sink], sink.up ? 1 : 0);
      self.get('sinkFailures')!.set([sink.sink], sink.failures);
      for (const r of sink.rowsRejected) self.get('sinkRowsRejected')!.set([sink.sink, r.table, r.reason], r.count);
    }
    for (const p of probes) {
      self.get('probeUp')!.set([p.name, p.kind], p.up ? 1 : 0);
      self.get('probeDuration')!.set([p.name, p.kind], p.durationSeconds);
    }
    for (const [key, count] of this.guard.overflow) self.get('seriesOverflow')!.set(key.split('\u0001'), count);
    for (const [key, count] of this.guard.shortened) self.get('labelValuesShortened')!.set(key.split('\u0001'), count);
    if (processSample) {
      self.get('buildInfo')!.set([processSample.version, process.versions.node], 1);
      self.get('processCpu')!.set([], processSample.cpuSeconds);
      self.get('processResident')!.set([], processSample.residentBytes);
      self.get('heapUsed')!.set([], processSample.heapUsedBytes);
      self.get('heapTotal')!.set([], processSample.heapTotalBytes);
      self.get('externalMemory')!.set([], processSample.externalBytes);
      self.get('processStart')!.set([], processSample.startTimeSeconds);
      if (processSample.eventLoopDelayP99Seconds !== null) self.get('eventLoopDelay')!.set([], processSample.eventLoopDelayP99Seconds);
    }
    for (const [key, family] of self) out.set(key, family);
    return (Object.keys(METRICS) as MetricKey[]).map((k) => out.get(k)).filter((f): f is Family => f !== undefined && f.series.size > 0);
  }
}

function restoredOnly(def: MetricDef, saved: readonly SavedSeries[]): Family {
  const family = new Family(def);
  family.restore(saved);
  return family;
}

