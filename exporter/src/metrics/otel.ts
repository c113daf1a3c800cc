// The OpenTelemetry side: the same families as /metrics, offered to the OpenTelemetry metrics
// SDK as a MetricProducer, so that an OTLP push (the collector/ path) carries exactly what
// Prometheus scrapes. The standard OTEL_EXPORTER_OTLP_* variables configure the exporter.
import { AggregationTemporality, DataPointType, MeterProvider, PeriodicExportingMetricReader, type MetricData, type MetricProducer, type CollectionResult } from '@opentelemetry/sdk-metrics';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ValueType, type HrTime } from '@opentelemetry/api';
import type { Family } from './families.ts';

function hrTime(ms: number): HrTime {
  return [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];
}

/** OTel names: semantic-convention names where defined, otherwise the Prometheus name without `_total`. */
function otelName(family: Family): string {
  return family.def.otelName ?? family.def.name.replace(/_total$/, '');
}

export function toMetricData(families: readonly Family[], startMs: number, nowMs: number): MetricData[] {
  const startTime = hrTime(startMs);
  const endTime = hrTime(nowMs);
  return families.map((family): MetricData => {
    const descriptor = { name: otelName(family), description: family.def.help, unit: family.def.unit, valueType: ValueType.DOUBLE };
    const series = [...family.series.values()];
    if (family.def.type === 'histogram') {
      return {
        descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.HISTOGRAM,
        dataPoints: series.map((s) => ({
          startTime, endTime, attributes: s.attributes,
          value: { buckets: { boundaries: [...family.def.buckets!], counts: [...s.counts!] }, sum: s.sum!, count: s.count! },
        })),
      };
    }
    const dataPoints = series.map((s) => ({ startTime, endTime, attributes: s.attributes, value: s.value }));
    return family.def.type === 'counter'
      ? { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints }
      : { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints };
  });
}

export function familiesProducer(collect: () => Family[], version: string): MetricProducer {
  const startMs = Date.now();
  const resource = resourceFromAttributes({ 'service.name': 'tokenwatch', 'service.version': version });
  return {
    async collect(): Promise<CollectionResult> {
      return {
        resourceMetrics: { resource, scopeMetrics: [{ scope: { name: 'tokenwatch', version }, metrics: toMetricData(collect(), startMs, Date.now()) }] },
        errors: [],
      };
    },
  };
}

/** Starts pushing the families over OTLP/HTTP on an interval. */
export function startOtlpPush(collect: () => Family[], options: { intervalMs: number; version: string }): MeterProvider {
  return new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter(),
        exportIntervalMillis: options.intervalMs,
        metricProducers: [familiesProducer(collect, options.version)],
      }),
    ],
  });
}
