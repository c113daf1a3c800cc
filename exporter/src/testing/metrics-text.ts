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

export interface Sample { name: string; labels: Record<string, string>; value: number }

/** The samples of `name` (exact metric name) with their labels parsed. */
export function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const space = line.lastIndexOf(' ');
    const labels: Record<string, string> = {};
    for (const m of line.slice(name.length, space).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    out.push({ name, labels, value: Number(line.slice(space + 1)) });
  }
  return out;
}

/** The value of the first sample of `name` whose labels include all of `labels`, or undefined. */
export function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  return samples(text, name).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
