// Fixture DDL of the source schemas, written from each project's own migrations (each file
// says which), for the embedded demo database and the tests. tokenwatch never creates these
// tables in a user's database.
import { readFileSync } from 'node:fs';
import type { SourceName } from '../model/events.ts';

const FILES: Record<SourceName, string> = {
  'claude-nexus-proxy': 'claude-nexus-proxy.sql',
  // The platform database (the shared clients' agents, conversations and transcripts included).
  'sidekick-forge': 'sidekick-forge-platform.sql',
  litellm: 'litellm.sql',
};

function read(file: string): string {
  return readFileSync(new URL(`./ddl/${file}`, import.meta.url), 'utf8');
}

/** The schema of a source's (main) database. */
export function sourceDdl(schema: SourceName): string {
  return read(FILES[schema]);
}

/** The schema of a Sidekick Forge dedicated client's own database. */
export function sidekickClientDdl(): string {
  return read('sidekick-forge-client.sql');
}

/** Older schema versions tokenwatch reads with no configuration, each with its own test. */
export const SCHEMA_VARIANTS = {
  /** Claude Nexus Proxy as its first migration (000-init-database) creates it. */
  'claude-nexus-proxy-v0': 'claude-nexus-proxy-v0.sql',
} as const;

export function variantDdl(variant: keyof typeof SCHEMA_VARIANTS): string {
  return read(SCHEMA_VARIANTS[variant]);
}
