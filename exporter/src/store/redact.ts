// Masks personal data and credentials in conversation content before it is stored
// (clickhouse.content: redacted, the default). Patterns are deliberately broad where a
// false positive is cheap (a few characters of context) and checked where a broad pattern
// would eat ordinary text: card numbers must pass the Luhn check and start like a card, IBANs
// must pass their mod-97 check. `redact.test.ts` holds the corpus of real-world forms and the
// prose and code that must come through untouched.
// Every pattern runs in time linear in the text: repetitions are bounded and a pattern that
// could start anywhere inside a run of letters (e-mail) only starts where the run does, so a
// 256 KiB message without an "@" costs milliseconds, not the minute an unbounded
// `[A-Za-z0-9._%+-]+@` would take.

/** The Luhn checksum of a card number's digits. */
function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

/** The ISO 13616 check of an IBAN (letters and digits, spaces removed). */
function ibanValid(iban: string): boolean {
  const rearranged = `${iban.slice(4)}${iban.slice(0, 4)}`.replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let remainder = 0;
  for (const digit of rearranged) remainder = (remainder * 10 + Number(digit)) % 97;
  return remainder === 1;
}

type Replacement = string | ((match: string, ...groups: string[]) => string);

const PATTERNS: [RegExp, Replacement][] = [
  // PEM private keys, whole.
  [/-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY)-----[\s\S]{0,10000}?-----END \1-----/g, '[REDACTED_PRIVATE_KEY]'],
  // Bearer tokens and Authorization headers.
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,4096}/gi, '$1 [REDACTED_TOKEN]'],
  // JSON Web Tokens: three base64url parts, the first two JSON ("eyJ").
  [/\beyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{8,4096}/g, '[REDACTED_TOKEN]'],
  // API keys: Anthropic (sk-ant-api03-…, sk-ant-admin01-…), OpenAI (sk-…, sk-proj-…, sk-svcacct-…),
  // Stripe (sk_live_…, pk_live_…, rk_…), LiveKit-style and similar prefixed secrets.
  [/\b(?:sk|pk|rk)[-_](?:ant-|live_|test_|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{8,512}/g, '[REDACTED_KEY]'],
  // AWS access key ids, and secret access keys where they are named.
  [/\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b/g, '[REDACTED_KEY]'],
  [/\b(aws_secret_access_key|aws_session_token|secretAccessKey)(["']?\s*[=:]\s*["']?)[A-Za-z0-9/+=]{16,1024}/gi, '$1$2[REDACTED_KEY]'],
  // Google API keys, GitHub and Slack tokens.
  [/\bAIza[0-9A-Za-z_-]{35}\b/g, '[REDACTED_KEY]'],
  [/\b(?:ghp|gho|ghs|ghu|ghr|github_pat)_[A-Za-z0-9_]{20,255}/g, '[REDACTED_KEY]'],
  [/\bxox[abpr]-[A-Za-z0-9-]{10,255}/g, '[REDACTED_KEY]'],
  // password=…, "api_key": "…" and the like.
  [/\b((?:password|passwd|api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token)["']?\s*[=:]\s*["']?)[^\s"',;]{6,512}/gi, '$1[REDACTED_SECRET]'],
  // E-mail addresses.
  [/(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,63}\b/g, '[REDACTED_EMAIL]'],
  // IBANs: country, check digits, then up to 30 letters and digits, optionally in groups of four.
  [/\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g, (m) => (ibanValid(m.replace(/ /g, '')) ? '[REDACTED_IBAN]' : m)],
  // Card numbers: 13 to 19 digits, grouped by spaces or dashes or not, starting like a card and passing Luhn.
  [/\b[3-6]\d{2}(?:[ -]?\d){10,16}\b/g, (m) => (luhn(m.replace(/[ -]/g, '')) ? '[REDACTED_CARD]' : m)],
  // Phone numbers: optional +country, then three groups of digits, or an area code in
  // parentheses and two; not inside a longer dotted number (an IP address, a version).
  [/(?<![\d.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?\d{3,4}[\s.-]\d{3,4}|\d{2,4}[\s.-]\d{2,4}[\s.-]\d{3,4})\b(?!\.\d)/g, '[REDACTED_PHONE]'],
];

export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement as string);
  return out;
}

export type ContentMode = 'full' | 'redacted' | 'none';

export function storedContent(text: string, mode: ContentMode): string {
  if (mode === 'full') return text;
  if (mode === 'none') return '';
  return redact(text);
}
