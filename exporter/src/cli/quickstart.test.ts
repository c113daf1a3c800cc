// The README's quick start, executed as written (on a fresh state directory and a free port;
// `npm install` is left out, the suite runs after it): `npm start` on a terminal shows
// readable log lines and the banner and serves live metrics, the second terminal's commands
// work and print their results, and Ctrl-C stops it cleanly.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePortOnLoopback } from '../embedded/ports.ts';
import { waitUntil } from '../testing/tokenwatch-process.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

/** The shell commands of the README's quick start: each code block's lines, comments removed. */
function quickStartBlocks(): string[][] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('<!-- quickstart:start -->'), readme.indexOf('<!-- quickstart:end -->'));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.split('\n').map((l) => l.replace(/\s+#\s.*$/, '').trim()).filter(Boolean));
}

const hasScript = spawnSync('script', ['--version']).status === 0;

describe.skipIf(!hasScript)('the README quick start', () => {
  it('npm start on a terminal: readable logs, the banner, live metrics; the second terminal\'s commands; a clean Ctrl-C', async () => {
    const [setup, secondTerminal] = quickStartBlocks();
    expect(setup).toContain('npm install && npm start');
    expect(secondTerminal!.length).toBe(3);
    const port = await freePortOnLoopback();
    const stateDir = mkdtempSync(join(tmpdir(), 'tw-quickstart-'));
    const env: NodeJS.ProcessEnv = { ...process.env, TOKENWATCH_STATE_DIR: stateDir, TOKENWATCH_LISTEN_ADDRESS: `127.0.0.1:${port}`, TERM: 'xterm' };
    delete env.TOKENWATCH_LOG_FORMAT;
    // script(1) gives npm start a terminal, as a user's shell would.
    const started = Date.now();
    const child = spawn('script', ['-qfec', 'npm start', '/dev/null'], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const metrics = () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
      await waitUntil(async () => /^tokenwatch_requests_total\{.*\} [1-9]/m.test(await metrics()), 'live metrics', 120_000, 500);
      const firstMetricsSeconds = (Date.now() - started) / 1000;
      // Every stream read once: the events are in ClickHouse.
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 'ready', 60_000, 500);
      const plain = output.replace(/\x1b\[[0-9;]*m/g, ''); // eslint-disable-line no-control-regex -- terminal colours
      expect(plain).toMatch(/^\S+Z INFO {2}serving HTTP address=127\.0\.0\.1:\d+/m);
      expect(plain).not.toMatch(/^\{"level"/m);
      expect(plain).toContain('tokenwatch 0.1.0 is reading the embedded demo database');
      expect(plain).toContain(`Metrics     http://127.0.0.1:${port}/metrics`);
      expect(plain).toContain('npm run tokenwatch -- query "SELECT tenant');

      const results: string[] = [];
      for (const command of secondTerminal!) {
        const result = spawnSync('sh', ['-c', command.replaceAll('localhost:9464', `127.0.0.1:${port}`)], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
        expect(result.status, `${command}\n${result.stderr}`).toBe(0);
        // No log line of tokenwatch's in a result (npm's own "> tokenwatch@… " header aside).
        expect(`${result.stdout}${result.stderr}`, command).not.toMatch(/"level"|INFO {2}|Exception/);
        results.push(result.stdout);
      }
      expect(results[0], results[0]).toMatch(/^tokenwatch_requests_total\{source="[a-z-]+",tenant="[^"]+",model=/m);
      expect(results[1]).toMatch(/tenant\s+│?\s*requests\s+│?\s*cost/);
      expect(results[1]).toContain('acme.example.com');
      expect(results[2]).toMatch(/tenant/);
      console.log(`quick start: first request counters on /metrics ${firstMetricsSeconds.toFixed(1)} s after npm start (fresh state directory)`);
    } finally {
      // Ctrl-C on the terminal.
      child.stdin.write('\x03');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(stateDir, { recursive: true, force: true });
    }
    expect(output).toContain('shutting down');
    expect(output).toMatch(/INFO.{0,20} stopped/);
  });
});
