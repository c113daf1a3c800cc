// What ad-hoc queries may run: one read-only statement.

/** Read-only statements only: the loopback query endpoint and the CLI both enforce it. */
export function isReadOnlyQuery(sql: string): boolean {
  const text = sql.replace(/--[^\n]*\n/g, '').replace(/\/\*[\s\S]*?\*\//g, '').trim();
  return /^(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN)\b/i.test(text) && !/;\s*\S/.test(text.replace(/;\s*$/, ''));
}
