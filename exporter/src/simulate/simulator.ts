// The traffic simulator behind `tokenwatch simulate` and the embedded demo: realistic rows
// for the three source schemas, either a history of past days written in bulk or live
// traffic at a rate, committed the way the real systems commit them (a request's row when
// its response ends, transcript rows as turns happen, usage counters updated in place).
import { sourceDdl } from '../embedded/ddl.ts';
import type { SourceName } from '../model/events.ts';
import { poisson, seeded, weighted, type Random } from './random.ts';
import { intensity } from './rhythm.ts';
import { buildWorld, type World } from './world.ts';
import { NEXUS_REQUESTS_PER_CONVERSATION, nexusConversation, type PendingRow } from './nexus.ts';
import { litellmCall } from './litellm.ts';
import { sidekickConversation, sidekickSetup, sidekickUsage } from './sidekick.ts';

export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

export interface SimulatorOptions {
  /** Fixes the simulated world (tenants, clients, agents, keys) and, unless trafficSeed is given, the traffic too. */
  seed: number;
  /** Seeds the traffic alone: a later process adding live traffic to the same world uses a new one. */
  trafficSeed?: number;
  /** Claude Nexus Proxy requests per second, averaged over a week; LiteLLM and Sidekick Forge scale with it. */
  rate: number;
  sources: readonly SourceName[];
  /** Wall clock (tests pass a fixed one). */
  now?: () => number;
  /** A live step failed (the database went away): reported, and the next step tries again. */
  onError?: (error: unknown) => void;
}

export interface SimulatedCounts {
  api_requests: number;
  LiteLLM_SpendLogs: number;
  LiteLLM_ErrorLogs: number;
  conversations: number;
  conversation_transcripts: number;
  agent_usage: number;
}

/** LiteLLM calls and Sidekick Forge conversations per Claude Nexus Proxy request. */
const LITELLM_PER_REQUEST = 0.6;
const SIDEKICK_CONVERSATIONS_PER_REQUEST = 1 / 25;
const PARAMETER_LIMIT = 30_000;
const HOUR = 3_600_000;

const TABLE_KEYS: Record<string, keyof SimulatedCounts> = {
  api_requests: 'api_requests', '"LiteLLM_SpendLogs"': 'LiteLLM_SpendLogs', '"LiteLLM_ErrorLogs"': 'LiteLLM_ErrorLogs',
  conversations: 'conversations', conversation_transcripts: 'conversation_transcripts', agent_usage: 'agent_usage',
};

/** Multi-row INSERTs of rows of one table, chunked under PostgreSQL's parameter limit; existing keys are left alone. */
async function insert(db: Queryable, table: string, rows: readonly Record<string, unknown>[], conflict = 'ON CONFLICT DO NOTHING'): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  const perStatement = Math.max(1, Math.floor(PARAMETER_LIMIT / columns.length));
  for (let i = 0; i < rows.length; i += perStatement) {
    const params: unknown[] = [];
    const values = rows.slice(i, i + perStatement).map((row) => `(${columns.map((c) => {
      params.push(row[c] ?? null);
      return `$${params.length}`;
    }).join(', ')})`);
    await db.query(`INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(', ')}) VALUES ${values.join(', ')} ${conflict}`, params);
  }
}

export class Simulator {
  readonly world: World;
  readonly counts: SimulatedCounts = { api_requests: 0, LiteLLM_SpendLogs: 0, LiteLLM_ErrorLogs: 0, conversations: 0, conversation_transcripts: 0, agent_usage: 0 };
  private readonly db: Queryable;
  private readonly options: SimulatorOptions;
  private readonly rnd: Random;
  private readonly now: () => number;
  /** Rows generated for the future (responses still running), written when their time comes. */
  private pending: PendingRow[] = [];
  /** Live conversations: their row's updates, due as their turns happen. */
  private conversationUpdates: { at: number; id: string; status: string; duration: number | null; voiceSeconds: number; agentId: string; clientId: string }[] = [];
  private generatedUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();

  constructor(db: Queryable, options: SimulatorOptions) {
    this.db = db;
    this.options = options;
    this.world = buildWorld(options.seed);
    this.rnd = seeded(options.trafficSeed ?? options.seed ^ 0x5eed);
    this.now = options.now ?? Date.now;
  }

  private has(source: SourceName): boolean {
    return this.options.sources.includes(source);
  }

  /** Creates the tables of the chosen sources where they are missing, and Sidekick Forge's clients, agents and tiers. */
  async setup(): Promise<void> {
    // One statement: a reader that connects meanwhile finds all the tables or none.
    await this.db.query(this.options.sources.map((s) => sourceDdl(s)).join(';\n'));
    if (this.has('sidekick-forge')) {
      const byTable = new Map<string, Record<string, unknown>[]>();
      for (const { table, row } of sidekickSetup(this.world, this.now())) {
        let list = byTable.get(table);
        if (!list) byTable.set(table, (list = []));
        list.push(row);
      }
      for (const table of ['tier_quotas', 'clients', 'agents']) await insert(this.db, table, byTable.get(table) ?? []);
      await this.writeUsage();
    }
  }

  private async writeUsage(): Promise<void> {
    const rows = sidekickUsage(this.world, this.now()).map((r) => r.row);
    // Only rows not there yet: live traffic keeps counting on the ones that are.
    await insert(this.db, 'agent_usage', rows);
    this.counts.agent_usage += rows.length;
  }

  /** Everything that starts in [from, to): conversations, gateway calls, agent sessions. */
  private generate(from: number, to: number): { rows: PendingRow[]; conversations: ReturnType<typeof sidekickConversation>[] } {
    const rows: PendingRow[] = [];
    const conversations: ReturnType<typeof sidekickConversation>[] = [];
    const seconds = (to - from) / 1000;
    const level = intensity((from + to) / 2) * this.options.rate * seconds;
    const at = () => from + this.rnd() * (to - from);
    if (this.has('claude-nexus-proxy')) {
      for (let n = poisson(this.rnd, level / NEXUS_REQUESTS_PER_CONVERSATION); n > 0; n--) rows.push(...nexusConversation(this.rnd, this.world, at()));
    }
    if (this.has('litellm')) {
      for (let n = poisson(this.rnd, level * LITELLM_PER_REQUEST); n > 0; n--) rows.push(...litellmCall(this.rnd, this.world, at()));
    }
    if (this.has('sidekick-forge')) {
      for (let n = poisson(this.rnd, level * SIDEKICK_CONVERSATIONS_PER_REQUEST); n > 0; n--) conversations.push(sidekickConversation(this.rnd, this.world, at()));
    }
    return { rows, conversations };
  }

  private async writeRows(rows: PendingRow[]): Promise<void> {
    rows.sort((a, b) => a.at - b.at);
    const byTable = new Map<string, Record<string, unknown>[]>();
    for (const r of rows) {
      let list = byTable.get(r.table);
      if (!list) byTable.set(r.table, (list = []));
      list.push(r.row);
    }
    // api_requests first: sub-task rows reference their parent, which ended before them.
    for (const [table, tableRows] of byTable) {
      await insert(this.db, table, tableRows);
      this.counts[TABLE_KEYS[table]!] += tableRows.length;
    }
    // Rows written in several steps, as the application does: each later version an UPDATE by id.
    for (const r of rows) {
      for (const update of r.updates ?? []) {
        const columns = Object.keys(update);
        await this.db.query(`UPDATE ${r.table} SET ${columns.map((c, i) => `"${c}" = $${i + 2}`).join(', ')} WHERE id = $1`, [r.row.id, ...columns.map((c) => update[c])]);
      }
    }
  }

  /**
   * Writes the last `days` of history in one-hour slices, oldest first; rows whose response
   * ends after now are left to the live traffic. `onProgress` gets the slices done and total;
   * an aborted `signal` stops it between slices (it throws the signal's reason).
   */
  async history(days: number, onProgress?: (done: number, total: number) => void, signal?: AbortSignal): Promise<SimulatedCounts> {
    const end = this.now();
    const start = end - days * 24 * HOUR;
    const total = Math.ceil((end - start) / HOUR);
    const later: PendingRow[] = [];
    for (let slice = 0; slice < total; slice++) {
      signal?.throwIfAborted();
      const from = start + slice * HOUR;
      const to = Math.min(end, from + HOUR);
      const { rows, conversations } = this.generate(from, to);
      const due = [...later.splice(0), ...rows];
      const conversationRows: Record<string, unknown>[] = [];
      for (const c of conversations) {
        conversationRows.push(c.conversation);
        due.push(...c.turns);
      }
      await insert(this.db, 'conversations', conversationRows);
      this.counts.conversations += conversationRows.length;
      // Rows whose response ends in a later slice wait for it (the order the proxy writes them in).
      const now = due.filter((r) => r.at < to);
      for (const r of due) if (r.at >= to && r.at <= end) later.push(r);
      await this.writeRows(now);
      onProgress?.(slice + 1, total);
    }
    this.generatedUntil = end;
    return { ...this.counts };
  }

  /** Live traffic from now on, until stop(): written every `tickMs` as responses end and turns happen. */
  start(tickMs = 250): void {
    this.timer = setInterval(() => {
      this.ticking = this.ticking.then(() => this.tick()).catch((error: unknown) => this.options.onError?.(error));
    }, tickMs);
  }

  /** One live step: generate what started since the last one, write what is due. */
  async tick(): Promise<void> {
    const now = this.now();
    // The first step (with no history before it) starts the traffic now.
    const since = this.generatedUntil || now;
    const { rows, conversations } = this.generate(since, now);
    this.generatedUntil = now;
    this.pending.push(...rows);
    for (const c of conversations) {
      await insert(this.db, 'conversations', [c.conversation]);
      this.counts.conversations += 1;
      this.pending.push(...c.turns);
      const agentId = String(c.conversation.agent_id);
      const created = Date.parse(String(c.conversation.created_at));
      const voice = c.conversation.channel === 'voice' || c.conversation.channel === 'hybrid';
      let previous = created;
      c.turns.forEach((turn, i) => {
        const last = i === c.turns.length - 1;
        this.conversationUpdates.push({
          at: turn.at, id: String(c.conversation.id), status: last ? 'archived' : 'active', duration: last ? Math.round((c.endsAt - created) / 1000) : null,
          voiceSeconds: voice && turn.row.role === 'user' ? Math.round((turn.at - previous) / 1000) : 0, agentId, clientId: c.client.id,
        });
        previous = turn.at;
      });
    }
    const due = this.pending.filter((r) => r.at <= now);
    this.pending = this.pending.filter((r) => r.at > now);
    await this.writeRows(due);
    const updates = this.conversationUpdates.filter((u) => u.at <= now);
    this.conversationUpdates = this.conversationUpdates.filter((u) => u.at > now);
    for (const u of updates) {
      // The platform's own functions: the month's row is created with the tier's limits, then incremented.
      if (u.voiceSeconds > 0) await this.db.query('SELECT * FROM increment_agent_voice_seconds($1, $2, $3)', [u.clientId, u.agentId, u.voiceSeconds]);
      else await this.db.query('SELECT * FROM increment_agent_text_messages($1, $2, 1)', [u.clientId, u.agentId]);
    }
    // Now and then an agent's configuration changes (its model), as operators tune them.
    if (this.has('sidekick-forge') && this.rnd() < (now - since) / (30 * 60_000)) {
      const client = weighted(this.rnd, this.world.clients.map((c) => ({ weight: c.weight, value: c })));
      const agent = client.agents[Math.floor(this.rnd() * client.agents.length)]!;
      await this.db.query('UPDATE agents SET model = $2, updated_at = now() WHERE id = $1', [agent.id, this.rnd() < 0.5 ? 'gpt-4o-mini' : 'claude-haiku-4-5']);
    }
  }

  /** Stops the live traffic after the step in flight; rows still running are not written. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
  }
}
