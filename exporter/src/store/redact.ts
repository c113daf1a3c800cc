// Masks personal data and credentials in conversation content before it is stored
// (clickhouse.content: redacted, the default). Patterns are deliberately broad: a false
// positive costs a few characters of context, a false negative leaks a secret.
// Every pattern runs in time linear in the text: repetitions are bounded and a pattern that
// could start anywhere inside a run of letters (e-mail) only starts where the run does, so a
// 256 KiB message without an "@" costs milliseconds, not the minute an unbounded
// `[A-Za-z0-9._%+-]+@` would take.

const PATTERNS: [RegExp, string][] = [
  // Bearer tokens and Authorization headers.
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [REDACTED_TOKEN]'],
  // API keys: sk-..., sk-ant-..., pk_live_..., AKIA..., ghp_..., xox[bp]-..., lk/LiveKit style long secrets.
  [/\b(?:sk|pk|rk)[-_](?:ant-|live_|test_|proj-)?[A-Za-z0-9_-]{8,}/g, '[REDACTED_KEY]'],
  [/\bAKIA[0-9A-Z]{16}\b/g, '[REDACTED_KEY]'],
  [/\b(?:ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}/g, '[REDACTED_KEY]'],
  [/\bxox[abpr]-[A-Za-z0-9-]{10,}/g, '[REDACTED_KEY]'],
  // E-mail addresses.
  [/(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,63}\b/g, '[REDACTED_EMAIL]'],
  // Card numbers: 13-19 digits, optionally grouped by spaces or dashes.
  [/\b(?:\d[ -]?){12,18}\d\b/g, '[REDACTED_CARD]'],
  // Phone numbers: optional +country, 7+ digits with separators.
  [/(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}[\s.-]\d{2,4}[\s.-]\d{3,4}\b/g, '[REDACTED_PHONE]'],
];

export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

export type ContentMode = 'full' | 'redacted' | 'none';

export function storedContent(text: string, mode: ContentMode): string {
  if (mode === 'full') return text;
  if (mode === 'none') return '';
  return redact(text);
}
