// Copies the non-TypeScript files the compiled CLI reads at run time (fixture DDL) into dist/.
import { cpSync } from 'node:fs';

cpSync('exporter/src/embedded/ddl', 'dist/exporter/src/embedded/ddl', { recursive: true });
