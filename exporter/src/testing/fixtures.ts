// Small helpers shared by tests.
import { Writable } from 'node:stream';
import { Config, type ConfigInput } from '../config/schema.ts';
import { createLogger } from '../log.ts';

export function silentLogger() {
  return createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
}

/** A validated Config whose sources (all three by default) read the given database. */
export function testConfig(url: string, input: ConfigInput = {}): Config {
  const config = Config.parse({
    sources: [{ type: 'claude-nexus-proxy' }, { type: 'sidekick-forge' }, { type: 'litellm' }],
    ...input,
  });
  for (const source of config.sources) {
    source.name ??= source.type;
    source.databaseUrl ??= url;
  }
  return config;
}
