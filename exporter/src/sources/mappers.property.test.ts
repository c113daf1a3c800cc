// Property-based test of every row mapper (fast-check): whatever a row holds (NULLs, wrong
// types, NaN, huge and negative numbers, invalid dates, control characters, 10,000-character
// strings, deeply nested JSON), mapping it the way the pipeline does (mapRowChecked) either
// gives events that satisfy the canonical model or rejects the row with a known reason; it
// never throws, and every repair reported has a known reason. Rows of the shapes PostgreSQL
// actually returns for the declared column types are never rejected for `invalid_event`:
// the mappers themselves handle them, the check is only a safety net.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ADAPTERS } from './registry.ts';
import { Pricing } from '../pricing/pricing.ts';
import type { MapContext } from './adapter.ts';
import { CanonicalEvent } from '../model/events.ts';
import { REJECT_REASONS, REPAIR_REASONS } from '../quality/row-quality.ts';
import { mapRowChecked } from '../quality/map-row.ts';
import { testConfig } from '../testing/fixtures.ts';

const NOW = Date.parse('2026-12-02T12:00:00Z');

/** Column aliases a select list produces (`… AS "alias"` or `… AS alias`). */
function aliases(sql: string): string[] {
  return [...new Set([...sql.matchAll(/\bAS\s+"?([A-Za-z_][A-Za-z0-9_]*)"?/g)].map((m) => m[1]!))];
}

/** JSON nested `depth` levels deep (a tree, as PostgreSQL returns it). */
function nested(depth: number): unknown {
  let value: unknown = { type: 'text', text: 'deep' };
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { content: value, role: 'user' };
  return value;
}

const hostileString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '', ' ', "'; DROP TABLE api_requests; --", 'a"b\\c\nd\re\tf', '\u0001\u0002\u0007\u001b[31m', 'x'.repeat(10_000), '\uFFFD\uFFFD',
    'claude-sonnet-4-5-20250929', 'gpt-4o', 'success', 'failure', 'user', 'assistant', 'active', 'voice',
    'infinity', '-infinity', 'NaN', '1970-01-01 00:00:00+00', '9999-12-31 23:59:59.999999+00', '2026-12-02 11:59:00+00', '{"usage_object": {', '[]',
  ),
);
const hostileValue = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  hostileString,
  fc.integer(),
  fc.constantFrom(-1, 0, 1, 2 ** 31 - 1, -(2 ** 31), Number.MAX_SAFE_INTEGER, 1e308, -1e-9),
  fc.double(),
  fc.boolean(),
  fc.date({ noInvalidDate: false }),
  fc.constantFrom(new Date(0), new Date('9999-12-31T23:59:59Z'), new Date(NOW - 60_000)),
  fc.jsonValue({ maxDepth: 4 }),
  fc.integer({ min: 1, max: 200 }).map(nested),
);

function rowFor(columns: string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(Object.fromEntries(columns.map((c) => [c, hostileValue])) as Record<string, fc.Arbitrary<unknown>>);
}

function context(repairs: string[]): MapContext {
  return { repaired: (reason) => repairs.push(reason), maxContentBytes: 4096, futureToleranceMs: 5 * 60_000, pricing: new Pricing({}), now: NOW };
}

const config = testConfig('postgres://unused@127.0.0.1/x');
const built = config.sources.map((source) => ({ source, built: ADAPTERS[source.type].build(source as typeof source & { name: string }) }));

/** What PostgreSQL returns for a column type (node-postgres: int4 as number, int8 as string, jsonb parsed). */
type ColumnType = 'text' | 'int' | 'float' | 'bool' | 'timestamp' | 'json';
const typedValue: Record<ColumnType, fc.Arbitrary<unknown>> = {
  text: hostileString,
  int: fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, -1, 2 ** 31 - 1)),
  float: fc.double(),
  bool: fc.boolean(),
  timestamp: fc.oneof(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), fc.constantFrom(new Date(0), new Date(NOW - 60_000))),
  json: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.integer({ min: 1, max: 200 }).map(nested)),
};
/** Column types of the incremental streams' select lists (the rest are text). */
const STREAM_COLUMN_TYPES: Record<string, Record<string, ColumnType>> = {
  'claude-nexus-proxy/api_requests': {
    timestamp: 'timestamp', response_status: 'int', response_streaming: 'bool', input_tokens: 'int', output_tokens: 'int', cache_creation_input_tokens: 'int',
    cache_read_input_tokens: 'int', first_token_ms: 'int', duration_ms: 'int', tool_call_count: 'int', message_count: 'int', is_subtask: 'bool',
    response_error: 'json', response_content: 'json', last_message: 'json',
  },
  'sidekick-forge/conversation_transcripts': { sequence: 'int', created_at: 'timestamp' },
  'sidekick-forge/conversations': { created_at: 'timestamp' },
  'sidekick-forge/activity_log': { created_at: 'timestamp' },
  'sidekick-forge/livekit_events': { duration: 'int', created_at: 'timestamp' },
  'litellm/LiteLLM_SpendLogs': { spend: 'float', prompt_tokens: 'int', completion_tokens: 'int', startTime: 'timestamp', endTime: 'timestamp', completionStartTime: 'timestamp', request_duration_ms: 'int', metadata: 'json' },
  'litellm/LiteLLM_ErrorLogs': { startTime: 'timestamp', endTime: 'timestamp' },
};

function typedRowFor(columns: string[], types: Record<string, ColumnType>): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(Object.fromEntries(columns.map((c) => [c, fc.option(typedValue[types[c] ?? 'text'], { freq: 5, nil: null })])) as Record<string, fc.Arbitrary<unknown>>);
}

/** Maps one row as the pipeline does and checks the outcome; returns the rejection reason, if any. */
function checkRow(map: (ctx: MapContext) => CanonicalEvent[]): { reason: string; message: string } | undefined {
  const repairs: string[] = [];
  const outcome = mapRowChecked(() => map(context(repairs)));
  for (const reason of repairs) expect(REPAIR_REASONS).toContain(reason);
  if (outcome.rejected) {
    expect(REJECT_REASONS).toContain(outcome.rejected.reason);
    return { reason: outcome.rejected.reason, message: outcome.rejected.message };
  }
  for (const event of outcome.events) CanonicalEvent.parse(event);
  return undefined;
}

describe('row mappers under hostile rows (fast-check)', () => {
  const options = { numRuns: 500, seed: 20261202, endOnFailure: true };
  for (const { built: { streams, snapshots } } of built) {
    for (const stream of streams) {
      it(`${stream.spec.id}: mapped or rejected with a known reason, never a crash`, () => {
        fc.assert(fc.property(rowFor(aliases(stream.spec.selectList)), (row) => void checkRow((ctx) => stream.map(row, ctx))), options);
      });
    }
    for (const stream of streams) {
      it(`${stream.spec.id}: rows of the column types PostgreSQL returns are handled by the mapper itself (never invalid_event)`, () => {
        const types = STREAM_COLUMN_TYPES[stream.spec.id]!;
        expect(types, 'column types declared for this stream').toBeDefined();
        fc.assert(fc.property(typedRowFor(aliases(stream.spec.selectList), types), (row) => {
          const rejected = checkRow((ctx) => stream.map(row, ctx));
          expect(rejected?.reason, rejected?.message).not.toBe('invalid_event');
        }), options);
      });
    }
    for (const query of snapshots) {
      it(`${query.id}: mapped or rejected with a known reason, never a crash`, () => {
        fc.assert(fc.property(rowFor(aliases(query.sql)), (row) => void checkRow((ctx) => query.mapRow(row, ctx, new Date(NOW).toISOString()))), options);
      });
    }
  }
});
