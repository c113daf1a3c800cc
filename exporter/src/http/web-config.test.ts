// TLS and basic auth with the exporter toolkit's web configuration file: a real Prometheus
// scrapes tokenwatch over TLS with basic auth, a wrong password is refused with 401 (and the
// target shows as down), and a bad web configuration exits 2 naming the field.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePortOnLoopback } from '../embedded/ports.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { startPrometheus, eventually, type PrometheusServer } from '../testing/prometheus.ts';
import { listen, metricsApp, type HttpServer } from './server.ts';
import { loadWebConfig } from './web-config.ts';

const MAIN = new URL('../cli/main.ts', import.meta.url).pathname;

/** A CA and a server certificate for 127.0.0.1 signed by it (openssl). */
function certificates(dir: string): { ca: string; cert: string; key: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tokenwatch test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName = IP:127.0.0.1\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.cnf']);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

/** GET over TLS trusting `ca`, with optional basic credentials. */
function get(url: string, ca: string, auth?: string): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: execFileSync('cat', [ca]), headers: auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web configuration (TLS and basic auth)', () => {
  let dir: string;
  let http: HttpServer;
  let prometheus: PrometheusServer;
  let url: string;
  let certs: ReturnType<typeof certificates>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tw-webconfig-'));
    certs = certificates(dir);
    writeFileSync(join(dir, 'web.yml'), [
      'tls_server_config:', '  cert_file: server.crt', '  key_file: server.key', '  min_version: TLS12',
      'basic_auth_users:', `  prometheus: ${bcrypt.hashSync('right horse battery', 4)}`,
      'http_server_config:', '  headers:', '    X-Content-Type-Options: nosniff',
    ].join('\n'));
    const web = loadWebConfig(join(dir, 'web.yml'));
    const registry = new MetricsRegistry();
    const port = await freePortOnLoopback();
    http = await listen(metricsApp(() => registry.collect([], [], []), () => ({ ready: true }), undefined, web), `127.0.0.1:${port}`, web.tls);
    url = `https://127.0.0.1:${port}`;
    prometheus = await startPrometheus([
      { job: 'tokenwatch', targets: [`127.0.0.1:${port}`], tlsCaFile: certs.ca, basicAuth: { username: 'prometheus', password: 'right horse battery' } },
      { job: 'intruder', targets: [`127.0.0.1:${port}`], tlsCaFile: certs.ca, basicAuth: { username: 'prometheus', password: 'wrong' } },
    ]);
  });
  afterAll(async () => {
    await prometheus?.stop();
    await http?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('Prometheus scrapes over TLS with basic auth; a wrong password is refused with 401', async () => {
    await eventually(async () => (await prometheus.query('up{job="tokenwatch"}'))[0]?.value === 1, 30_000, 'the TLS scrape');
    await eventually(async () => (await prometheus.query('up{job="intruder"}'))[0]?.value === 0, 30_000, 'the refused scrape');
    const ok = await get(`${url}/metrics`, certs.ca, 'prometheus:right horse battery');
    expect(ok.status).toBe(200);
    expect(ok.headers['x-content-type-options']).toBe('nosniff');
    for (const auth of ['prometheus:wrong', 'nobody:right horse battery', undefined]) {
      const refused = await get(`${url}/metrics`, certs.ca, auth);
      expect(refused.status, String(auth)).toBe(401);
      expect(refused.headers['www-authenticate']).toBe('Basic realm="tokenwatch"');
    }
    // The health endpoints too, as the exporter toolkit protects every path.
    expect((await get(`${url}/readyz`, certs.ca)).status).toBe(401);
    // Plain HTTP on the TLS port gets nowhere.
    await expect(fetch(`http://127.0.0.1:${url.split(':').at(-1)}/metrics`).then((r) => r.status)).rejects.toThrow();
  });

  it('a web configuration with a plain password, or a missing certificate, exits 2 before anything starts', () => {
    writeFileSync(join(dir, 'bad.yml'), 'tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: hunter2\n');
    const result = spawnSync(process.execPath, [MAIN, 'run', '--web.config.file', join(dir, 'bad.yml')], { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '', TOKENWATCH_STATE_DIR: join(dir, 'state') } });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('basic_auth_users.alice: must be a bcrypt hash');
    expect(result.stderr).not.toContain('hunter2');
    writeFileSync(join(dir, 'bad.yml'), `tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: ${bcrypt.hashSync('x', 4)}\n`);
    const missing = spawnSync(process.execPath, [MAIN, 'run', '--web.config.file', join(dir, 'bad.yml')], { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '', TOKENWATCH_STATE_DIR: join(dir, 'state') } });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('tls_server_config.cert_file: cannot read missing.crt (ENOENT)');
  });
});
