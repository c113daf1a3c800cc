// CI's dependency audit: `npm audit --omit=dev`, failing on a high or critical advisory in a
// runtime dependency. A registry without the advisory endpoint (some mirrors) cannot be
// audited: that is printed loudly, and the step does not pretend to have passed an audit.
//   node scripts/audit.ts
import { spawnSync } from 'node:child_process';

const result = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8' });
let report: { metadata?: { vulnerabilities?: Record<string, number> }; error?: { code?: string; summary?: string }; message?: string };
try {
  report = JSON.parse(result.stdout || '{}') as typeof report;
} catch {
  report = { error: { summary: (result.stderr || result.stdout).split('\n')[0] } };
}
const counts = report.metadata?.vulnerabilities;
if (!counts) {
  const why = report.error?.summary || report.message || report.error?.code || result.stderr.split('\n').find((l) => l.includes('error')) || 'no report';
  process.stdout.write(`npm audit: NOT AUDITED: the registry gave no advisory report (${why.trim()}); run \`npm audit --omit=dev\` against registry.npmjs.org\n`);
  process.exit(0);
}
const serious = (counts.high ?? 0) + (counts.critical ?? 0);
process.stdout.write(`npm audit --omit=dev: ${Object.entries(counts).map(([level, n]) => `${level} ${n}`).join(', ')}\n`);
if (serious > 0) {
  process.stdout.write(spawnSync('npm', ['audit', '--omit=dev'], { encoding: 'utf8' }).stdout);
  process.exit(1);
}
