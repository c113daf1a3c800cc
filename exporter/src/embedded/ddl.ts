// Fixture DDL of the three source schemas, for the embedded demo database and the tests.
import { readFileSync } from 'node:fs';
import type { SourceName } from '../model/events.ts';

const FILES: Record<SourceName, string> = {
  'claude-nexus-proxy': 'claude-nexus-proxy.sql',
  'sidekick-forge': 'sidekick-forge.sql',
  litellm: 'litellm.sql',
};

export function sourceDdl(schema: SourceName): string {
  return readFileSync(new URL(`./ddl/${FILES[schema]}`, import.meta.url), 'utf8');
}
