// A source writer, as its own process so that it does not share an event loop with what it
// measures: inserts Claude Nexus Proxy rows at a steady rate the way the proxy commits them
// (a row is inserted when its response ends, its timestamp is the request's start, so rows
// arrive late and out of order), and prints one JSON line per commit: {"t": epoch ms after
// the commit returned, "n": rows committed so far}.
//   node bench/writer.ts <postgres url> <rows per second> <seconds>
import pg from 'pg';

const [url, rateText, secondsText] = process.argv.slice(2);
if (!url || !rateText || !secondsText) {
  process.stderr.write('usage: node bench/writer.ts <postgres url> <rows per second> <seconds>\n');
  process.exit(2);
}
const rate = Number(rateText);
const seconds = Number(secondsText);
const TICK_MS = 50;
const client = new pg.Client({ connectionString: url, application_name: 'bench-writer' });
await client.connect();
let stopping = false;
process.on('SIGTERM', () => (stopping = true));
const started = Date.now();
let due = 0;
let committed = 0;
while (!stopping && Date.now() - started < seconds * 1000) {
  const tickStart = Date.now();
  due += (rate * TICK_MS) / 1000;
  const rows = Math.floor(due);
  due -= rows;
  if (rows > 0) {
    // Durations: mostly a few seconds, a long tail up to a minute (streaming responses).
    await client.query(
      `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens,
         cache_read_input_tokens, duration_ms, first_token_ms, account_id)
       SELECT gen_random_uuid(), 'tenant-' || (floor(random() * 20))::int || '.example.com', now() - make_interval(secs => d),
         (ARRAY['claude-sonnet-4-5-20250929', 'claude-opus-4-1-20250805', 'claude-haiku-4-5-20251001', 'claude-3-5-haiku-20241022'])[1 + floor(random() * 4)::int],
         'inference', CASE WHEN random() < 0.02 THEN 529 WHEN random() < 0.01 THEN 429 ELSE 200 END,
         (100 + random() * 4000)::int, (random() * 1500)::int, (random() * 2000)::int, (d * 1000)::int, (200 + random() * 800)::int,
         'account-' || (floor(random() * 3))::int
       FROM (SELECT least(60, 0.3 + exp(random() * 2.5) - 1 + random()) AS d FROM generate_series(1, $1::int)) s`,
      [rows],
    );
    committed += rows;
    process.stdout.write(`${JSON.stringify({ t: Date.now(), n: committed })}\n`);
  }
  const wait = TICK_MS - (Date.now() - tickStart);
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}
await client.end();
