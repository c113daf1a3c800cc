// Values spliced into ClickHouse SQL text, where bind parameters cannot go (table function
// arguments, generated mappings). Only for values tokenwatch itself produces or validates.

/** A ClickHouse string literal: backslashes and single quotes escaped. */
export function clickhouseString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
