import { describe, expect, it } from 'vitest';
import { redact, storedContent } from './redact.ts';

describe('redact', () => {
  it.each([
    ['mail me at jane.doe+llm@example.co.uk please', 'mail me at [REDACTED_EMAIL] please'],
    ['key sk-ant-api03-abcdefghijklmnop here', 'key [REDACTED_KEY] here'],
    ['use sk-proj-ABCDEFGH12345678', 'use [REDACTED_KEY]'],
    ['Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig', 'Authorization: Bearer [REDACTED_TOKEN]'],
    ['call +1 555 010 1234 now', 'call [REDACTED_PHONE] now'],
    ['card 4111 1111 1111 1111 exp', 'card [REDACTED_CARD] exp'],
    ['aws AKIAIOSFODNN7EXAMPLE', 'aws [REDACTED_KEY]'],
  ])('masks %s', (input, expected) => {
    expect(redact(input)).toBe(expected);
  });

  it('leaves ordinary text, numbers and dates alone', () => {
    const text = 'Order 12345 shipped on 2026-11-22 at 14:30, total 99.95 EUR; see section 4.2.';
    expect(redact(text)).toBe(text);
  });

  it('stores full, redacted or no content', () => {
    expect(storedContent('a@b.io', 'full')).toBe('a@b.io');
    expect(storedContent('a@b.io', 'redacted')).toBe('[REDACTED_EMAIL]');
    expect(storedContent('a@b.io', 'none')).toBe('');
  });
});
