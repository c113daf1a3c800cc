// Message text for simulated conversations: short prompts and replies, a few of them with
// the personal data a redacting store has to mask (e-mail addresses, phone numbers).
import { pick, type Random } from './random.ts';

const ASKS = [
  'Can you summarise the attached incident report?', 'Refactor this function to avoid the N+1 query.', 'Write a unit test for the billing module.',
  'Why does the deploy fail with exit code 137?', 'Draft a reply to the customer about the delayed shipment.', 'Translate this paragraph into German.',
  'Explain the difference between a mutex and a semaphore.', 'Which index would make this query faster?', 'Review this pull request for security issues.',
  'Plan a three-day trip to Lisbon in May.', 'Turn these notes into a project update.', 'Find the bug in this regular expression.',
];
const PERSONAL = ['Please reply to jane.doe@example.com with the result.', 'Call me back on +1 415 555 0134 tomorrow.', 'My colleague is at ops-team@example.org.'];
const REPLIES = [
  'Here is a summary of the main points:', 'The issue comes from the loop that queries each row separately.', 'I would start with a composite index on (tenant, created_at).',
  'Exit code 137 means the process was killed, usually for exceeding its memory limit.', 'Sure, here is a draft you can adapt:', 'Let me walk through it step by step.',
];

export function ask(rnd: Random): string {
  return rnd() < 0.04 ? `${pick(rnd, ASKS)} ${pick(rnd, PERSONAL)}` : pick(rnd, ASKS);
}

export function reply(rnd: Random, words: number): string {
  const filler = ['the', 'request', 'data', 'result', 'first', 'then', 'because', 'which', 'server', 'users', 'change', 'value'];
  const body = Array.from({ length: Math.max(3, Math.min(words, 120)) }, () => pick(rnd, filler)).join(' ');
  return `${pick(rnd, REPLIES)} ${body}.`;
}
