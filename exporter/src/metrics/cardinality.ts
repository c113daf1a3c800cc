// Keeps label cardinality bounded. Values of the open-ended labels (tenant, model, account,
// client, agent, error type) are admitted first come, first served up to a cap per label,
// or only from an allow-list when one is configured; every metric also has a cap on its
// series. Anything beyond folds into the value "other" and is counted, so memory stays
// bounded whatever the source tables contain (LiteLLM users learned this the hard way).
// Label values themselves are bounded too: control characters are replaced and values
// longer than MAX_LABEL_VALUE_CHARS are shortened to a prefix and a hash (still distinct).
import { createHash } from 'node:crypto';

export interface CardinalityLimits {
  /** Most series one metric may have; the rest fold into "other". */
  maxSeriesPerMetric: number;
  /** Most distinct values per open-ended label, across all metrics. */
  maxValuesPerLabel: Readonly<Record<string, number>>;
  /** When set for a label, only these values are kept. */
  allow: Readonly<Record<string, readonly string[]>>;
}

export const OTHER = 'other';

/** Longest label value kept as it is. */
export const MAX_LABEL_VALUE_CHARS = 256;
const SHORTENED_PREFIX_CHARS = 200;
/** C0 controls (but tab and newline, which the text format escapes) and DEL. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_TEST = /[\u0000-\u0008\u000b-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/**
 * A label value safe to expose and to key series by: control characters become U+FFFD, and
 * a value longer than MAX_LABEL_VALUE_CHARS becomes its first 200 characters, "…" and 12 hex
 * digits of its SHA-256 (two long values stay two series). Returns the value itself when it
 * is already safe.
 */
export function safeLabelValue(value: string): string {
  let out = CONTROL_TEST.test(value) ? value.replace(CONTROL, '\uFFFD') : value;
  if (out.length > MAX_LABEL_VALUE_CHARS) {
    out = `${Array.from(out).slice(0, SHORTENED_PREFIX_CHARS).join('')}…${createHash('sha256').update(value).digest('hex').slice(0, 12)}`;
  }
  return out;
}

/** The values with safeLabelValue applied; the same array when every value is safe. `changed` receives the indexes changed. */
export function safeLabelValues(values: readonly string[], changed?: number[]): readonly string[] {
  let out: string[] | undefined;
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    if (value.length <= MAX_LABEL_VALUE_CHARS && !CONTROL_TEST.test(value)) continue;
    out ??= [...values];
    out[i] = safeLabelValue(value);
    changed?.push(i);
  }
  return out ?? values;
}

/** Metric labels that carry the same open-ended value share one cap. */
const LABEL_GROUP: Record<string, string> = {
  tenant: 'tenant',
  client: 'client',
  model: 'model',
  gen_ai_request_model: 'model',
  account: 'account',
  agent: 'agent',
  error_type: 'error_type',
};

export const DEFAULT_LIMITS: CardinalityLimits = {
  maxSeriesPerMetric: 20_000,
  maxValuesPerLabel: { tenant: 500, client: 1000, model: 200, account: 500, agent: 2000, error_type: 50 },
  allow: {},
};

export class CardinalityGuard {
  private readonly limits: CardinalityLimits;
  private readonly values = new Map<string, Set<string>>();
  private readonly series = new Map<string, Set<string>>();
  /** "metric\u0001label" -> folded updates. */
  readonly overflow = new Map<string, number>();
  /** "metric\u0001label" -> updates whose label value had to be made safe (safeLabelValue). */
  readonly shortened = new Map<string, number>();

  constructor(limits: CardinalityLimits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  private admitValue(group: string, value: string): boolean {
    if (value === OTHER || value === '') return true;
    const allow = this.limits.allow[group];
    if (allow) return allow.includes(value);
    let seen = this.values.get(group);
    if (!seen) this.values.set(group, (seen = new Set()));
    if (seen.has(value)) return true;
    if (seen.size >= (this.limits.maxValuesPerLabel[group] ?? Infinity)) return false;
    seen.add(value);
    return true;
  }

  /** Restores the counts a previous process saved (metrics/durable-counters.ts). */
  restoreCounts(kind: 'overflow' | 'shortened', metric: string, label: string, count: number): void {
    const map = kind === 'overflow' ? this.overflow : this.shortened;
    const key = `${metric}\u0001${label}`;
    map.set(key, Math.max(map.get(key) ?? 0, count));
  }

  /** The counts so far, as [metric, label, count]. */
  counts(kind: 'overflow' | 'shortened'): [string, string, number][] {
    return [...(kind === 'overflow' ? this.overflow : this.shortened)].map(([key, count]) => {
      const [metric, label] = key.split('\u0001') as [string, string];
      return [metric, label, count];
    });
  }

  fold(metric: string, label: string): void {
    const key = `${metric}\u0001${label}`;
    this.overflow.set(key, (this.overflow.get(key) ?? 0) + 1);
  }

  shorten(metric: string, label: string): void {
    const key = `${metric}\u0001${label}`;
    this.shortened.set(key, (this.shortened.get(key) ?? 0) + 1);
  }

  /** `values` made safe (safeLabelValues), each change counted for its label. */
  safe(metric: string, labels: readonly string[], values: readonly string[]): readonly string[] {
    const changed: number[] = [];
    const out = safeLabelValues(values, changed);
    for (const i of changed) this.shorten(metric, labels[i]!);
    return out;
  }

  /**
   * The label values to record under: the given ones, or with "other" where a cap is reached.
   * `folded` receives the labels that were folded (for callers that cache the decision).
   */
  admit(metric: string, labels: readonly string[], unsafeValues: readonly string[], folded?: string[]): readonly string[] {
    const values = this.safe(metric, labels, unsafeValues);
    let out: string[] | undefined;
    for (let i = 0; i < labels.length; i++) {
      const group = LABEL_GROUP[labels[i]!];
      if (group && !this.admitValue(group, values[i]!)) {
        out ??= [...values];
        out[i] = OTHER;
        this.fold(metric, labels[i]!);
        folded?.push(labels[i]!);
      }
    }
    const result = out ?? values;
    const key = result.join('\u0001');
    let seen = this.series.get(metric);
    if (!seen) this.series.set(metric, (seen = new Set()));
    if (seen.has(key)) return result;
    if (seen.size < this.limits.maxSeriesPerMetric) {
      seen.add(key);
      return result;
    }
    // Series cap reached: fold every open-ended label of this update.
    this.fold(metric, '*');
    folded?.push('*');
    const all = result.map((v, i) => (LABEL_GROUP[labels[i]!] ? OTHER : v));
    seen.add(all.join('\u0001'));
    return all;
  }

  /** Registers values restored from a checkpoint, so admission stays as it was. */
  remember(metric: string, labels: readonly string[], values: readonly string[]): void {
    labels.forEach((label, i) => {
      const group = LABEL_GROUP[label];
      if (group && !this.limits.allow[group] && values[i] !== OTHER) {
        let seen = this.values.get(group);
        if (!seen) this.values.set(group, (seen = new Set()));
        seen.add(values[i]!);
      }
    });
    let seen = this.series.get(metric);
    if (!seen) this.series.set(metric, (seen = new Set()));
    seen.add(values.join('\u0001'));
  }
}
