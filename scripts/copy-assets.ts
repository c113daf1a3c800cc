// Finishes dist/ after tsc: copies the non-TypeScript files the compiled CLI reads at run time
// (fixture DDL, ClickHouse migrations), and makes the package's bin executable, which tsc does
// not (npm does so when installing the package elsewhere, not for `npx tokenwatch` in a clone).
import { chmodSync, cpSync, readFileSync } from 'node:fs';

cpSync('exporter/src/embedded/ddl', 'dist/exporter/src/embedded/ddl', { recursive: true });
cpSync('clickhouse/migrations', 'dist/clickhouse/migrations', { recursive: true });
const { bin } = JSON.parse(readFileSync('package.json', 'utf8')) as { bin: Record<string, string> };
for (const path of Object.values(bin)) chmodSync(path, 0o755);
