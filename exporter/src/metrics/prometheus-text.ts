// Prometheus text exposition (format 0.0.4) of metric families. Label sets are pre-rendered
// per series (families.ts), so a scrape is one pass of string building; gzip when the
// scraper asks for it.
import { promisify } from 'node:util';
import { gzip as gzipCallback, constants } from 'node:zlib';
import type { Family } from './families.ts';

const gzip = promisify(gzipCallback);

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function formatNumber(value: number): string {
  if (Number.isFinite(value)) return String(value);
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? '+Inf' : '-Inf';
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function prometheusText(families: readonly Family[]): string {
  const parts: string[] = [];
  for (const family of families) {
    const { name, help, type, buckets } = family.def;
    parts.push(`# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`);
    if (type !== 'histogram') {
      let chunk = '';
      for (const s of family.series.values()) chunk += `${name}${s.labelText} ${formatNumber(s.value)}\n`;
      parts.push(chunk);
      continue;
    }
    const le = buckets!.map((b) => `le="${formatNumber(b)}"}`);
    let chunk = '';
    for (const s of family.series.values()) {
      const open = s.labelText === '' ? '{' : `${s.labelText.slice(0, -1)},`;
      let cumulative = 0;
      for (let i = 0; i < le.length; i++) {
        cumulative += s.counts![i]!;
        chunk += `${name}_bucket${open}${le[i]} ${cumulative}\n`;
      }
      chunk += `${name}_bucket${open}le="+Inf"} ${s.count!}\n${name}_sum${s.labelText} ${formatNumber(s.sum!)}\n${name}_count${s.labelText} ${s.count!}\n`;
    }
    parts.push(chunk);
  }
  return parts.join('');
}

/** The response body for a scrape: gzip-compressed when `acceptEncoding` allows it. */
export async function encodeForScrape(text: string, acceptEncoding: string | undefined): Promise<{ body: Buffer | string; encoding?: 'gzip' }> {
  if (acceptEncoding && /\bgzip\b/.test(acceptEncoding)) {
    return { body: await gzip(text, { level: constants.Z_BEST_SPEED }), encoding: 'gzip' };
  }
  return { body: text };
}
