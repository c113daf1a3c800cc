// Bad rows never stop the stream: each is counted by reason, logged at most once per reason
// per interval, and the rest flows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { MemorySink } from '../sinks/memory-sink.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { createLogger } from '../log.ts';
import { testConfig } from '../testing/fixtures.ts';
import { API_REQUEST_COLUMNS, apiRequestRows, insertRows, uuidFrom } from '../embedded/seed.ts';
import { sourceDdl } from '../embedded/ddl.ts';
import type { MessageEvent, RequestEvent } from '../model/events.ts';
import { RowQuality } from './row-quality.ts';

describe('bad rows', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    // SQL_ASCII stores any bytes, so a row can hold text that is not valid UTF-8, as some
    // legacy databases do.
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge'], encoding: 'SQL_ASCII' });
    // A LiteLLM variant whose metadata column is plain text, so it can hold malformed JSON.
    await db.pool.query('CREATE SCHEMA textjson');
    await db.pool.query(`SET search_path TO textjson; ${sourceDdl('litellm')}; ALTER TABLE "LiteLLM_SpendLogs" ALTER COLUMN metadata TYPE text; SET search_path TO public`);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('counts and skips or repairs each kind of bad row, logs each reason once per interval, and keeps the good rows', async () => {
    const good = apiRequestRows(100, { seed: 7, idPrefix: 'good-' });
    await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, good);
    const bad = (name: string) => uuidFrom(`bad-${name}`);
    const q = (sql: string, params: unknown[] = []) => db.pool.query(sql, params);
    // Each with its response stored (a row without one waits for it: row versions).
    const base = `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, input_tokens, output_tokens, conversation_id, body, response_body, response_status)`;
    // Skipped: negative tokens (three rows, logged once), a timestamp an hour in the future.
    for (let i = 0; i < 3; i++) await q(`${base} VALUES ($1, 'acme', now(), 'claude-sonnet-4-5', 'inference', -5, 10, NULL, NULL, NULL, 200)`, [bad(`negative-${i}`)]);
    await q(`${base} VALUES ($1, 'acme', now() + interval '1 hour', 'claude-sonnet-4-5', 'inference', 1, 1, NULL, NULL, NULL, 200)`, [bad('future')]);
    // Repaired and kept: NULL tokens, an unknown model, an oversized body.
    await q(`${base} VALUES ($1, 'acme', now(), 'claude-sonnet-4-5', 'inference', NULL, NULL, NULL, NULL, NULL, 200)`, [bad('null')]);
    await q(`${base} VALUES ($1, 'acme', now(), 'mystery-model-9', 'inference', 10, 10, NULL, NULL, NULL, 200)`, [bad('unknown')]);
    await q(`${base} VALUES ($1, 'acme', now(), 'claude-sonnet-4-5', 'inference', 10, 10, $2, $3, NULL, 200)`, [
      bad('oversized'), uuidFrom('conv-big'), JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(5000) }] }),
    ]);
    // Invalid UTF-8 in a transcript.
    await q(`INSERT INTO conversation_transcripts (id, conversation_id, role, content, created_at) VALUES ($1, $2, 'user', E'caf\\xe9 \\xff\\xfe', now())`, [bad('utf8'), uuidFrom('conv-utf8')]);
    // Malformed JSON in a text metadata column.
    await q(`INSERT INTO textjson."LiteLLM_SpendLogs" (request_id, call_type, "startTime", "endTime", model, prompt_tokens, completion_tokens, spend, metadata, status)
      VALUES ('bad-json', 'acompletion', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', 'gpt-4o', 5, 5, 0.001, '{"usage_object": {', 'success')`);

    const logLines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'warn',
      format: 'json',
      destination: new Writable({ write: (chunk, _e, cb) => { logLines.push(JSON.parse(String(chunk)) as Record<string, unknown>); cb(); } }),
    });
    const config = testConfig(db.url, {
      sources: [{ type: 'claude-nexus-proxy' }, { type: 'sidekick-forge' }, { type: 'litellm', schema: 'textjson' }],
      quality: { maxContentBytes: '1KiB' },
    });
    const quality = new RowQuality(logger, 60_000);
    const sink = new MemorySink();
    const pipeline = await Pipeline.open({ config, logger, sinks: [sink], store: new MemoryCheckpointStore(), autoSources: false, quality });
    await pipeline.backfill();
    // A second batch of the same problem a moment later is counted but not logged again.
    await q(`${base} VALUES ($1, 'acme', now(), 'claude-sonnet-4-5', 'inference', -1, 0, NULL, NULL, NULL, 200)`, [bad('negative-late')]);
    await pipeline.backfill();
    await pipeline.close();

    const counts = Object.fromEntries(quality.snapshot().map((c) => [`${c.stream} ${c.action} ${c.reason}`, c.count]));
    expect(counts).toMatchObject({
      'claude-nexus-proxy/api_requests rejected negative_tokens': 4,
      'claude-nexus-proxy/api_requests rejected future_timestamp': 1,
      'claude-nexus-proxy/api_requests repaired null_tokens': 2,
      'claude-nexus-proxy/api_requests repaired unknown_model': 1,
      'claude-nexus-proxy/api_requests repaired oversized_body': 1,
      'sidekick-forge/conversation_transcripts repaired invalid_utf8': 1,
      'litellm/LiteLLM_SpendLogs repaired malformed_json': 1,
    });
    const logged = logLines.filter((l) => l.reason === 'negative_tokens');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 'warn', stream: 'claude-nexus-proxy/api_requests', action: 'rejected', msg: 'row rejected and skipped' });

    const requests = sink.events.filter((e): e is RequestEvent => e.kind === 'request');
    const ids = new Set(requests.map((r) => r.requestId));
    for (const row of good) expect(ids.has(String(row[0]))).toBe(true);
    for (const skipped of ['negative-0', 'negative-1', 'negative-2', 'negative-late', 'future']) expect(ids.has(bad(skipped))).toBe(false);
    expect(requests.find((r) => r.requestId === bad('null'))).toMatchObject({ inputTokens: 0, outputTokens: 0 });
    expect(requests.find((r) => r.requestId === bad('unknown'))).toMatchObject({ model: 'mystery-model-9', costUsd: null });
    expect(requests.find((r) => r.requestId === 'bad-json')).toMatchObject({ inputTokens: 5, cacheReadTokens: 0 });
    const messages = sink.events.filter((e): e is MessageEvent => e.kind === 'message');
    const big = messages.find((m) => m.messageId === `${bad('oversized')}:request`)!;
    expect(Buffer.byteLength(big.content)).toBeLessThanOrEqual(1024);
    expect(messages.find((m) => m.messageId === bad('utf8'))!.content).toContain('caf\uFFFD');
  });
});
