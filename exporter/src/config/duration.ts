// Durations and sizes in configuration are written the way Prometheus and the OTel
// Collector write them ("500ms", "15s", "10m", "1h"; "1MiB"), parsed to numbers once here.
import { z } from 'zod';

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, KB: 1000, MB: 1000 ** 2, GB: 1000 ** 3 };

export function parseDurationMs(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * DURATION_UNITS_MS[match[2]!]!;
}

/** A duration such as "15s"; the parsed value is in milliseconds. */
export const Duration = z
  .string()
  .transform((text, ctx) => {
    const ms = parseDurationMs(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration; expected a number with a unit ms, s, m, h or d, e.g. "15s" or "10m"` });
      return z.NEVER;
    }
    return ms;
  });

/** A byte size such as "1MiB"; the parsed value is in bytes. */
export const ByteSize = z.union([z.number().int().positive(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const match = /^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)$/.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a size; expected a number with a unit B, KiB, MiB or GiB, e.g. "1MiB"` });
    return z.NEVER;
  }
  return Number(match[1]) * SIZE_UNITS[match[2]!]!;
});
