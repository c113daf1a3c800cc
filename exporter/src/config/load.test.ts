import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactSecrets } from './load.ts';
import { SourceName } from '../model/events.ts';
import { ADAPTERS } from '../sources/registry.ts';

function file(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tokenwatch-config-')), 'tokenwatch.yaml');
  writeFileSync(path, text);
  return path;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('with nothing configured, reads all three source types from the embedded demo database', () => {
    const loaded = loadConfig({ env: {} });
    expect(loaded.embedded).toBe(true);
    expect(loaded.autoSources).toBe(true);
    expect(loaded.config.sources.map((s) => s.name)).toEqual(['claude-nexus-proxy', 'sidekick-forge', 'litellm']);
    expect(loaded.config.sources[0]).toMatchObject({ schema: 'public', pollInterval: 5000, maxCommitDelay: 900_000, batchSize: 5000 });
    expect(loaded.config.server.listenAddress).toBe('0.0.0.0:9464');
  });

  it('DATABASE_URL and TOKENWATCH_SOURCES choose the database and the sources', () => {
    const loaded = loadConfig({ env: { DATABASE_URL: 'postgres://u:p@db:5432/app', TOKENWATCH_SOURCES: 'litellm' } });
    expect(loaded.embedded).toBe(false);
    expect(loaded.config.sources).toHaveLength(1);
    expect(loaded.config.sources[0]).toMatchObject({ type: 'litellm', name: 'litellm', databaseUrl: 'postgres://u:p@db:5432/app' });
  });

  it('reads renamed tables and columns, another schema and ${VAR} references from the file', () => {
    const path = file(`
sources:
  - type: claude-nexus-proxy
    name: nexus-eu
    databaseUrl: \${NEXUS_URL}
    schema: proxy
    columns: { domain: project_id }
    tables: { api_requests: requests }
    pollInterval: 2s
    maxCommitDelay: 30m
stateDir: \${STATE:-/var/lib/tokenwatch}
`);
    const loaded = loadConfig({ file: path, env: { NEXUS_URL: 'postgresql://ro@nexus/db' } });
    expect(loaded.config.stateDir).toBe('/var/lib/tokenwatch');
    expect(loaded.config.sources[0]).toMatchObject({
      name: 'nexus-eu', databaseUrl: 'postgresql://ro@nexus/db', schema: 'proxy',
      columns: { domain: 'project_id' }, tables: { api_requests: 'requests' }, pollInterval: 2000, maxCommitDelay: 1_800_000,
    });
  });

  it('names every invalid field, the problem with its value and the expected form, all at once', () => {
    const path = file(`
sources:
  - type: nexus
  - type: litellm
    pollInterval: 5 seconds
    batchSize: 0
server:
  listenAddress: 9464
colour: blue
`);
    const found = problems(() => loadConfig({ file: path, env: {} }));
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^sources\.0\.type: .*"claude-nexus-proxy".*\(got "nexus"\)$/),
        expect.stringMatching(/^sources\.1\.pollInterval: "5 seconds" is not a duration; expected .*"15s"/),
        expect.stringMatching(/^sources\.1\.batchSize: .*>=1.*\(got 0\)$/),
        expect.stringMatching(/^server\.listenAddress: .*\(got 9464\)$/),
        expect.stringMatching(/colour/),
      ]),
    );
    expect(found).toHaveLength(5);
  });

  it('refuses a port beyond 65535 before anything starts', () => {
    expect(problems(() => loadConfig({ env: { TOKENWATCH_LISTEN_ADDRESS: '127.0.0.1:99999' } }))).toEqual([
      expect.stringMatching(/^server\.listenAddress: the port must be 0 to 65535 \(got "127\.0\.0\.1:99999"\)$/),
    ]);
  });

  it('reports YAML syntax errors with the line, unset variables and unreadable files', () => {
    expect(problems(() => loadConfig({ file: file('sources: [\n  - type: litellm\n'), env: {} }))[0]).toMatch(/is not valid YAML at line \d/);
    expect(problems(() => loadConfig({ file: file('stateDir: ${NOPE}\n'), env: {} }))[0]).toMatch(/environment variable NOPE is not set/);
    expect(problems(() => loadConfig({ file: '/nonexistent/tokenwatch.yaml', env: {} }))[0]).toMatch(/cannot read configuration file/);
  });

  it('never prints passwords', () => {
    const path = file('sources:\n  - type: litellm\n    databaseUrl: mysql://admin:hunter2@db/app\n');
    const found = problems(() => loadConfig({ file: path, env: {} }));
    expect(found.join('\n')).toMatch(/databaseUrl: must be a PostgreSQL connection URL/);
    expect(found.join('\n')).not.toContain('hunter2');
    expect(problems(() => loadConfig({ env: { DATABASE_URL: 'mysql://a:hunter2@x/y' } })).join()).not.toContain('hunter2');
    expect(redactSecrets('postgres://ro:s3cr3t@db:5432/app?sslmode=require password=abc')).toBe('postgres://ro:****@db:5432/app?sslmode=require password=****');
  });

  it('the adapter registry and the config schema name the same source types', () => {
    expect(Object.keys(ADAPTERS).sort()).toEqual([...SourceName.options].sort());
  });
});
