#!/usr/bin/env node
// Entry point of the `tokenwatch` command (package.json "bin").
import { buildProgram } from './program.ts';
import { errorText } from '../log.ts';

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.stderr.write(`tokenwatch: ${errorText(error)}\n`);
    process.exit(1);
  });
