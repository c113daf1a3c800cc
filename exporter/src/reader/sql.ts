// Identifier quoting for table and column names that come from configuration.
// Values always go in as bind parameters; only identifiers are spliced into SQL text.

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The name inside a quoted identifier ("startTime" -> startTime), for catalog lookups. */
export function unquoteIdent(identifier: string): string {
  return identifier.startsWith('"') ? identifier.slice(1, -1).replace(/""/g, '"') : identifier;
}

export function qualifiedTable(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}
