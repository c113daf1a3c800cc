// Copies the non-TypeScript files the compiled CLI reads at run time (fixture DDL, ClickHouse migrations) into dist/.
import { cpSync } from 'node:fs';

cpSync('exporter/src/embedded/ddl', 'dist/exporter/src/embedded/ddl', { recursive: true });
cpSync('clickhouse/migrations', 'dist/clickhouse/migrations', { recursive: true });
