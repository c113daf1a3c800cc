// FINAL without merging across partitions, for the tables where that gives the same rows.
//
// A dashboard reads the ReplacingMergeTree tables with FINAL so that a row delivered twice
// counts once. By default FINAL merges the rows of every partition the query touches, even
// partitions that are already one merged part. With do_not_merge_across_partitions_select_final
// ClickHouse merges each partition on its own and skips those that need no merging, which for
// the months behind the current one is all of them: "Messages per conversation" over 5M
// messages went from 431 to 106 ms, the Conversations list from 768 to 386 ms (bench/analytics.ts
// times both forms).
//
// It returns the same rows only where two versions of a row can never sit in different
// partitions: background merges never cross partitions, so for those tables the setting
// changes nothing but the time. That holds when the partition is a function of the sorting key,
// or of a column that is fixed for a key, or there is no partition at all. activity_events is
// not such a table: an event's time (a quota crossing, a conversation's end) can move to
// another month between two observations, and FINAL must merge those across months.
// final.test.ts checks each table's claim against the migrations and the results on data with
// duplicates in several parts and months.

/** Tables whose rows never change partition, and why. */
export const PARTITION_FIXED_BY_KEY: Readonly<Record<string, string>> = {
  requests: 'PARTITION BY toYYYYMM(started_at), and toDate(started_at) is in the sorting key',
  messages: 'PARTITION BY toYYYYMM(created_at): a message id always comes with the created_at of its source row, which the proxies never change',
  usage_daily: 'PARTITION BY toYYYYMM(day), and day is in the sorting key',
  conversations: 'not partitioned',
};

export const FINAL_WITHIN_PARTITIONS = 'do_not_merge_across_partitions_select_final = 1';

/** The tables `sql` reads with FINAL (`db.table FINAL` or `db.table AS alias FINAL`). */
export function finalTables(sql: string): string[] {
  return [...sql.matchAll(/\b\w+\.(\w+)(?:\s+AS\s+\w+)?\s+FINAL\b/gi)].map((m) => m[1]!);
}

/**
 * `sql` with the setting appended when it reads with FINAL and every table it reads so is one
 * whose rows never change partition; otherwise `sql` unchanged.
 */
export function finalWithinPartitions(sql: string): string {
  const tables = finalTables(sql);
  if (tables.length === 0 || !tables.every((t) => t in PARTITION_FIXED_BY_KEY)) return sql;
  if (/\bSETTINGS\b/i.test(sql)) throw new Error(`a dashboard query with its own SETTINGS clause: add ${FINAL_WITHIN_PARTITIONS} to it by hand`);
  return `${sql}\nSETTINGS ${FINAL_WITHIN_PARTITIONS}`;
}

/** `sql` as finalWithinPartitions wrote it, with the setting turned off: FINAL merging across partitions again. */
export function finalAcrossPartitions(sql: string): string {
  return sql.replace(FINAL_WITHIN_PARTITIONS, 'do_not_merge_across_partitions_select_final = 0');
}
