// A real Prometheus (Debian's binary) for tests: scrapes the given targets every second from a
// temporary directory on a free loopback port, and answers PromQL through its HTTP API.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortOnLoopback } from '../embedded/ports.ts';

export interface PrometheusServer {
  url: string;
  /** Instant query; returns [labels, value] per series. */
  query(promql: string, time?: number): Promise<{ metric: Record<string, string>; value: number }[]>;
  /** Range query; returns [labels, samples] per series. */
  queryRange(promql: string, start: number, end: number, stepSeconds: number): Promise<{ metric: Record<string, string>; values: [number, number][] }[]>;
  stop(): Promise<void>;
}

export interface ScrapeJob {
  job: string;
  targets: string[];
  /** https, with the CA that signed the target's certificate. */
  tlsCaFile?: string;
  basicAuth?: { username: string; password: string };
}

export async function startPrometheus(jobs: ScrapeJob[], options: { extraConfig?: string; scrapeInterval?: string } = {}): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tokenwatch-prom-'));
  const port = await freePortOnLoopback();
  const interval = options.scrapeInterval ?? '1s';
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    options.extraConfig ?? '',
    'scrape_configs:',
    ...jobs.flatMap((j) => [
      `  - job_name: ${j.job}`,
      ...(j.tlsCaFile ? ['    scheme: https', '    tls_config:', `      ca_file: '${j.tlsCaFile}'`] : []),
      ...(j.basicAuth ? ['    basic_auth:', `      username: '${j.basicAuth.username}'`, `      password: '${j.basicAuth.password}'`] : []),
      '    static_configs:',
      `      - targets: [${j.targets.map((t) => `'${t}'`).join(', ')}]`,
    ]),
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const child: ChildProcess = spawn('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--web.enable-lifecycle',
    '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
    if (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)) break;
    if (i > 100) throw new Error(`prometheus did not become ready: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  async function api<T>(path: string, params: Record<string, string>): Promise<T> {
    const response = await fetch(`${url}${path}?${new URLSearchParams(params)}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`PromQL ${params.query}: ${body.error}`);
    return body.data;
  }
  return {
    url,
    async query(promql, time) {
      const data = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>('/api/v1/query', {
        query: promql, ...(time === undefined ? {} : { time: String(time) }),
      });
      return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async queryRange(promql, start, end, step) {
      const data = await api<{ result: { metric: Record<string, string>; values: [number, string][] }[] }>('/api/v1/query_range', {
        query: promql, start: String(start), end: String(end), step: String(step),
      });
      return data.result.map((r) => ({ metric: r.metric, values: r.values.map(([t, v]) => [t, Number(v)] as [number, number]) }));
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns true (or throws after `timeoutMs`). */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
