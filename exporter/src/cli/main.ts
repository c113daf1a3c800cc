#!/usr/bin/env node
// Entry point of the `tokenwatch` command (package.json "bin").
import { buildProgram } from './program.ts';
import { errorText } from '../log.ts';
import { ConfigError } from '../config/load.ts';
import { EXIT_CONFIG, UsageError } from './load-or-exit.ts';

// `tokenwatch query … | head`: the reader went away; that is the end of the output, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.stderr.write(`tokenwatch: ${errorText(error)}\n`);
    // A configuration found unusable once a command is under way still exits 2.
    process.exit(error instanceof ConfigError || error instanceof UsageError ? EXIT_CONFIG : 1);
  });
