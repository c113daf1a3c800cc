// The source adapters tokenwatch knows, by type. Adding a source schema means adding one
// module beside this file and one line here; the config schema's SourceName enum lists the
// same names, and a test checks the two agree.
import type { SourceName } from '../model/events.ts';
import type { SourceAdapter } from './adapter.ts';
import { claudeNexusProxy } from './claude-nexus-proxy.ts';
import { litellm } from './litellm.ts';
import { sidekickForge } from './sidekick-forge.ts';

export const ADAPTERS: Readonly<Record<SourceName, SourceAdapter>> = {
  'claude-nexus-proxy': claudeNexusProxy,
  'sidekick-forge': sidekickForge,
  litellm,
};

export function adapterFor(type: SourceName): SourceAdapter {
  return ADAPTERS[type];
}
