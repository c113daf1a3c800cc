// Reading Prometheus text in tests: the sum of a metric's samples, optionally only those whose
// labels match.

/** Sum of the samples of `name` (exact metric name) whose label text contains every `match` string. */
export function sumSamples(text: string, name: string, ...match: string[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelEnd = line.lastIndexOf(' ');
    const labels = line.slice(name.length, labelEnd);
    if (match.every((m) => labels.includes(m))) sum += Number(line.slice(labelEnd + 1));
  }
  return sum;
}
