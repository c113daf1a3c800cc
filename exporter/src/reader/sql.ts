// Identifier quoting for table and column names that come from configuration.
// Values always go in as bind parameters; only identifiers are spliced into SQL text.

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function qualifiedTable(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}
