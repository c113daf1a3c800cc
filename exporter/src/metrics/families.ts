// Metric families: series keyed by their label values, each holding a counter/gauge value or
// histogram buckets. The label text of every series (`{a="x",b="y"}`) is built once when the
// series is created, so serving /metrics is string concatenation, not escaping. Families can
// be saved to and restored from JSON, which is how counters survive restarts.
import type { MetricDef } from './catalog.ts';

export interface Series {
  values: readonly string[];
  /** Label set as OpenTelemetry attributes (same object every collection). */
  attributes: Readonly<Record<string, string>>;
  /** `{a="x",b="y"}`, or '' for a series without labels. */
  labelText: string;
  value: number;
  /** Histograms: per-bucket (not cumulative) counts, one more than there are boundaries. */
  counts?: number[];
  sum?: number;
  count?: number;
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function labelText(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return '';
  return `{${names.map((n, i) => `${n}="${escapeLabelValue(values[i]!)}"`).join(',')}}`;
}

export type SavedSeries = [string[], number] | [string[], number[], number, number];

export class Family {
  readonly def: MetricDef;
  readonly series = new Map<string, Series>();

  constructor(def: MetricDef) {
    this.def = def;
  }

  get(values: readonly string[]): Series {
    const key = values.join('\u0001');
    let series = this.series.get(key);
    if (!series) {
      const attributes: Record<string, string> = {};
      this.def.labels.forEach((name, i) => (attributes[name] = values[i]!));
      series = { values: [...values], attributes, labelText: labelText(this.def.labels, values), value: 0 };
      if (this.def.type === 'histogram') {
        series.counts = new Array<number>(this.def.buckets!.length + 1).fill(0);
        series.sum = 0;
        series.count = 0;
      }
      this.series.set(key, series);
    }
    return series;
  }

  add(values: readonly string[], delta: number): void {
    this.get(values).value += delta;
  }

  set(values: readonly string[], value: number): void {
    this.get(values).value = value;
  }

  observe(values: readonly string[], value: number): void {
    observeInto(this.get(values), this.def.buckets!, value);
  }

  save(): SavedSeries[] {
    return [...this.series.values()].map((s) =>
      this.def.type === 'histogram' ? [[...s.values], [...s.counts!], s.sum!, s.count!] : [[...s.values], s.value],
    );
  }

  restore(saved: readonly SavedSeries[]): void {
    for (const entry of saved) {
      const series = this.get(entry[0]);
      if (entry.length === 2) series.value = entry[1];
      else {
        series.counts = [...entry[1]];
        series.sum = entry[2];
        series.count = entry[3];
      }
    }
  }
}

/** Adds one observation to a histogram series. */
export function observeInto(series: Series, buckets: readonly number[], value: number): void {
  // Buckets are upper-inclusive (le); few boundaries, so a linear scan is fastest.
  let i = 0;
  while (i < buckets.length && value > buckets[i]!) i++;
  series.counts![i]! += 1;
  series.sum! += value;
  series.count! += 1;
}

/** A batch of observations already sorted into buckets (per-bucket, not cumulative counts). */
export interface BucketedObservations {
  counts: readonly number[];
  sum: number;
  count: number;
}

/** Adds a batch of bucketed observations to a histogram series. */
export function observeBucketedInto(series: Series, observations: BucketedObservations): void {
  for (let i = 0; i < observations.counts.length; i++) series.counts![i]! += observations.counts[i]!;
  series.sum! += observations.sum;
  series.count! += observations.count;
}

/** Adds `from` into `into` series by series (several streams feed the same metric). */
export function mergeInto(into: Family, from: Family): void {
  for (const s of from.series.values()) {
    const target = into.get(s.values);
    if (s.counts) {
      for (let i = 0; i < s.counts.length; i++) target.counts![i]! += s.counts[i]!;
      target.sum! += s.sum!;
      target.count! += s.count!;
    } else {
      target.value += s.value;
    }
  }
}
