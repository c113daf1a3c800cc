// What ad-hoc queries may run: one read-only statement.

const READ_ONLY = ['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN'];
const WRITING = ['INSERT', 'ALTER', 'DROP', 'CREATE', 'TRUNCATE', 'DELETE', 'UPDATE', 'RENAME', 'OPTIMIZE', 'GRANT', 'REVOKE', 'SYSTEM', 'KILL', 'ATTACH', 'DETACH', 'EXCHANGE', 'SET', 'USE'];

/**
 * Why a query may not run, or undefined when it is one read-only statement. The loopback
 * query endpoint and the CLI both enforce it; the reason names what was found.
 */
export function readOnlyQueryProblem(sql: string): string | undefined {
  const text = sql.replace(/--[^\n]*(\n|$)/g, '\n').replace(/\/\*[\s\S]*?\*\//g, '').trim();
  const allowed = `${READ_ONLY.filter((k) => k !== 'DESC').join(', ')}`;
  if (text === '') return `the query is empty: give one statement starting with ${allowed}`;
  if (/;\s*\S/.test(text.replace(/;\s*$/, ''))) return 'only one statement is allowed (found a ";" followed by more)';
  const first = /^[A-Za-z_]+/.exec(text)?.[0]?.toUpperCase() ?? text.slice(0, 20);
  if (READ_ONLY.includes(first)) return undefined;
  if (WRITING.includes(first)) return `${first} writes: only read-only statements (${allowed}) are allowed`;
  const near = READ_ONLY.find((k) => editDistance(k, first) <= 2);
  return `"${first}" does not start a read-only statement${near ? ` (did you mean ${near}?)` : ''}: the query must start with ${allowed}`;
}

export function isReadOnlyQuery(sql: string): boolean {
  return readOnlyQueryProblem(sql) === undefined;
}

/** Levenshtein distance, for "did you mean" on short keywords. */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
