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

// Ctrl-C in a command without a stop of its own (run, backfill and simulate have theirs):
// say so and exit with the shell's code for the signal, rather than vanish.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    if (process.listenerCount(signal) > 1) return;
    process.stderr.write(`tokenwatch: interrupted by ${signal}\n`);
    process.exit(code);
  });
}

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.stderr.write(`tokenwatch: ${errorText(error)}\n`);
    // A configuration found unusable once a command is under way still exits 2.
    process.exit(error instanceof ConfigError || error instanceof UsageError ? EXIT_CONFIG : 1);
  });
