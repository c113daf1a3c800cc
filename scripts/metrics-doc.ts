// Regenerates the metric table of docs/metrics.md (between the metrics-catalog markers) from the
// catalog in exporter/src/metrics/catalog.ts. Run: npm run docs. A test checks it is fresh.
import { readFileSync, writeFileSync } from 'node:fs';
import { METRICS } from '../exporter/src/metrics/catalog.ts';

const start = '<!-- metrics-catalog:start -->';
const end = '<!-- metrics-catalog:end -->';
const rows = Object.values(METRICS).map((m) => `| \`${m.name}\` | ${m.type} | ${m.unit} | ${m.labels.join(', ')} | ${m.help.replace(/\|/g, '\\|')} | ${m.source} |`);
const table = ['| name | type | unit | labels | meaning | source |', '|---|---|---|---|---|---|', ...rows].join('\n');
const readme = readFileSync('docs/metrics.md', 'utf8');
const from = readme.indexOf(start);
const to = readme.indexOf(end);
if (from < 0 || to < 0) throw new Error(`docs/metrics.md lacks the ${start} / ${end} markers`);
writeFileSync('docs/metrics.md', `${readme.slice(0, from + start.length)}\n${table}\n${readme.slice(to)}`);
