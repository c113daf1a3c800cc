// The documentation as a new user reads it: every `tokenwatch` command shown in the README
// and docs/ names a command and flags that exist (parsed by the real command line, actions
// left out), `npx tokenwatch` works in the clone, and every relative link and anchor resolves.
// (quickstart.test.ts runs the quick start's commands themselves.)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from './program.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const DOCUMENTS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** Splits a shell command line into words, honouring quotes (enough for documentation). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/** Every tokenwatch invocation in a document's shell blocks, as the arguments after the command. */
function invocations(document: string): { line: string; args: string[] }[] {
  const found: { line: string; args: string[] }[] = [];
  let fence: string | undefined;
  for (const raw of readFileSync(join(ROOT, document), 'utf8').split('\n')) {
    const opening = /^```(\w*)/.exec(raw);
    if (opening) {
      fence = fence === undefined ? opening[1] : undefined;
      continue;
    }
    // Shell blocks, and blocks without a language (the command overview).
    if (fence === undefined || !['', 'sh', 'bash', 'console'].includes(fence)) continue;
    const line = raw.replace(/\s+#\s.*$/, '').replace(/^\$ /, '').trim();
    // npx tokenwatch …, npm run tokenwatch -- …, tokenwatch … (after variables and before a pipe or redirection).
    const m = /(?:^|[\s;&|(])(?:npx tokenwatch|npm run tokenwatch --|tokenwatch)\s+([^|>;&]*)/.exec(line);
    if (!m || /^tokenwatch[._-]/.test(line)) continue;
    const args = shellWords(m[1]!.replaceAll('$(date +%Y-%m)', '2026-12'));
    if (args.length > 0) found.push({ line, args });
  }
  return found;
}

/** The real command line with every action replaced: parsing checks commands, options and arguments only. */
function parserOnly(): Command {
  const program = buildProgram();
  const quiet = (command: Command) => {
    command.exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    if (command.commands.length === 0) command.action(() => undefined);
    for (const sub of command.commands) quiet(sub);
  };
  quiet(program);
  return program;
}

/** GitHub's anchor of a heading. */
function slug(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

describe('documentation', () => {
  it('every tokenwatch command shown parses: its command, options and arguments exist', async () => {
    let checked = 0;
    for (const document of DOCUMENTS) {
      for (const { line, args } of invocations(document)) {
        // The README's command overview: "tokenwatch query SQL   Ad-hoc …" names the command only.
        const words = /\s{2,}/.test(line) && !line.includes('"') ? args.slice(0, args.findIndex((w) => /^[A-Z][a-z]/.test(w)) >>> 0) : args;
        const argv = words.filter((w) => !/^[A-Z]+$/.test(w)); // placeholders such as SQL, MODEL
        const program = parserOnly();
        const known = (await program.parseAsync(['node', 'tokenwatch', ...argv]).then(() => null, (error: { code?: string; message: string }) => error)) as { code?: string; message: string } | null;
        // A documented command that needs an argument it does not show (the overview) is fine.
        if (known && known.code !== 'commander.missingArgument' && known.code !== 'commander.missingMandatoryOptionValue' && known.code !== 'commander.helpDisplayed') {
          expect.fail(`${document}: \`${line}\`: ${known.message}`);
        }
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(20); // the extractor finds the documents' commands
  });

  it('an unknown command or flag in a document would be caught (the check can fail)', async () => {
    for (const argv of [['run', '--web.listen-adress', ':9464'], ['reprot', 'usage'], ['backfill', '--no-progres']]) {
      const error = await parserOnly().parseAsync(['node', 'tokenwatch', ...argv]).then(() => null, (e: { code?: string }) => e);
      expect(error?.code, argv.join(' ')).toMatch(/^commander\.unknown/);
    }
  });

  it('npx tokenwatch works in the clone', () => {
    const result = spawnSync('npx', ['--no-install', 'tokenwatch', '--version'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('every relative link and anchor resolves', () => {
    const problems: string[] = [];
    for (const document of DOCUMENTS) {
      const text = readFileSync(join(ROOT, document), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const file = path === '' ? join(ROOT, document) : resolve(dirname(join(ROOT, document)), path);
        if (!existsSync(file)) {
          problems.push(`${document}: ${target} does not exist`);
          continue;
        }
        if (anchor && file.endsWith('.md')) {
          const headings = [...readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '').matchAll(/^#+ (.+)$/gm)].map((h) => slug(h[1]!));
          if (!headings.includes(anchor)) problems.push(`${document}: ${target}: no heading with that anchor`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('the README stays short: at most 300 lines', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').length).toBeLessThanOrEqual(300);
  });
});
