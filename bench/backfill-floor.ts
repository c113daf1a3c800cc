// Diagnostic benchmark: how close could any design that keeps the backfill's ClickHouse work
// come to the raw baseline? "Floor" rounds skip everything the read side needs: ClickHouse
// pulls the plain columns itself with postgresql() (no COPY relay through tokenwatch, no
// REPEATABLE READ snapshot, no error class or rate-limit status from the JSON columns, which
// the table function cannot compute), then does exactly the bulk path's ClickHouse work on
// the whole table as one chunk: the mapping into a staging table, then the exactly-once
// commit into `requests` with its views alongside the metric aggregate. Same rows, same engine, rounds
// alternating with the baseline after a warm-up round, median of the ratios.
//   npm run bench -- backfill-floor     (BENCH_ROWS=1000000, BENCH_ROUNDS=5)
import pg from 'pg';
import { Config } from '../exporter/src/config/schema.ts';
import { openStore } from '../exporter/src/store/clickhouse.ts';
import { BulkLoader } from '../exporter/src/store/bulk-load.ts';
import { loaderSettings } from '../exporter/src/pipeline/bulk-poll.ts';
import { claudeNexusProxy } from '../exporter/src/sources/claude-nexus-proxy.ts';
import { Pricing } from '../exporter/src/pricing/pricing.ts';
import { quoteIdent } from '../exporter/src/reader/sql.ts';
import { clickhouseString } from '../exporter/src/store/literal.ts';
import { benchSize, median, postgresqlTable, rawBaseline, truncateEvents, waitForMerges, withSeededSource } from './api-requests.ts';

/** The models of the seeded table, as the bulk path reads them before its chunks. */
async function distinctModels(url: string): Promise<{ model: string; provider: null }[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ model: string }>('SELECT DISTINCT model FROM api_requests WHERE model IS NOT NULL');
    return rows.map((r) => ({ model: r.model, provider: null }));
  } finally {
    await client.end();
  }
}

export async function runBackfillFloorBench(): Promise<void> {
  const { rows, rounds } = benchSize();
  await withSeededSource(rows, async (cluster, stateDir) => {
    const config = Config.parse({ stateDir, sources: [{ type: 'claude-nexus-proxy' }] });
    const store = await openStore(config);
    await store.migrate();
    const spec = claudeNexusProxy.build({ ...config.sources[0]!, name: 'claude-nexus-proxy' }).streams[0]!.bulk!;
    const ctx = { pricing: new Pricing(), futureLimit: new Date(Date.now() + 3_600_000).toISOString(), models: await distinctModels(cluster.url()), lookup: () => "''", lookupKnown: () => 'true' };
    // A second connection: the aggregate runs alongside the commit, as in the bulk path.
    const aggregateStore = await store.connectAgain();
    const loader = await BulkLoader.open({
      store, loadStore: store, aggregateStore, streamId: 'floor', source: 'claude-nexus-proxy', transport: 'file', ...loaderSettings(spec, ctx),
    });
    // The copied columns as the table function gives them; expressions (JSON) become NULL.
    const pulled = spec.columns
      .map((c) => {
        const column = /^t\."([^"]+)"$/.exec(c.sql)?.[1];
        return `CAST(${column === undefined ? 'NULL' : quoteIdent(column)}, ${clickhouseString(c.type)}) AS ${quoteIdent(c.name)}`;
      })
      .join(', ');
    const source = `(SELECT ${pulled} FROM ${postgresqlTable(cluster.port)})`;

    console.log(`\nbackfill floor (ClickHouse reads PostgreSQL itself, then the bulk path's ClickHouse work), ${rows} rows, a warm-up round and ${rounds} rounds`);
    const ratios: number[] = [];
    for (let round = 0; round <= rounds; round++) {
      await waitForMerges(store);
      const rawSeconds = await rawBaseline(store, cluster.port);
      await truncateEvents(store);
      await store.command(`TRUNCATE TABLE ${loader.staging(0)}`);
      const started = performance.now();
      await store.command(`${loader.stagedInsert(0, source)} SETTINGS max_threads = 1`);
      await Promise.all([loader.commit(0), loader.aggregate(0)]);
      const floorSeconds = (performance.now() - started) / 1000;
      const [count] = await store.query<{ n: string }>('SELECT count() AS n FROM tokenwatch.requests');
      if (Number(count!.n) !== rows) throw new Error(`floor stored ${count!.n} rows of ${rows}`);
      const ratio = rawSeconds / floorSeconds;
      if (round > 0) ratios.push(ratio);
      console.log(`${round === 0 ? 'warm-up (not counted)' : `round ${round}`}: raw postgresql() ${rawSeconds.toFixed(2)} s, floor ${floorSeconds.toFixed(2)} s, ratio ${ratio.toFixed(3)}`);
    }
    await loader.close();
    await aggregateStore.close();
    await store.close();
    console.log(`RESULT backfill_floor_ratio=${median(ratios).toFixed(3)} (median of ${rounds}; the bulk path's ClickHouse work alone, for comparison with backfill_throughput_ratio)`);
  });
}
