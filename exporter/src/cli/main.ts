#!/usr/bin/env node
// Entry point of the `tokenwatch` command (package.json "bin").
import { buildProgram } from './program.ts';
import { errorText } from '../log.ts';
import { ConfigError } from '../config/load.ts';
import { EXIT_CONFIG } from './load-or-exit.ts';

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.stderr.write(`tokenwatch: ${errorText(error)}\n`);
    // A configuration found unusable once a command is under way still exits 2.
    process.exit(error instanceof ConfigError ? EXIT_CONFIG : 1);
  });
