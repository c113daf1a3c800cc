// The redacting store's corpus: real-world forms of keys, tokens and personal data are
// masked; ordinary prose and code come through untouched; a large message costs linear time.
import { describe, expect, it } from 'vitest';
import { redact, storedContent } from './redact.ts';

describe('redact', () => {
  it.each([
    ['mail me at jane.doe+llm@example.co.uk please', 'mail me at [REDACTED_EMAIL] please'],
    ['Anthropic sk-ant-api03-abcdefghijklmnopQRSTUVWX_yz-0123456789abcdefgh-AA here', 'Anthropic [REDACTED_KEY] here'],
    ['admin sk-ant-admin01-Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0', 'admin [REDACTED_KEY]'],
    ['OPENAI_API_KEY=sk-proj-ABCDEFGH12345678abcdefgh', 'OPENAI_API_KEY=[REDACTED_KEY]'],
    ['use sk-proj-ABCDEFGH12345678', 'use [REDACTED_KEY]'],
    ['legacy sk-9aZ8bY7cX6dW5eV4fU3gT2hS1iR0jQ', 'legacy [REDACTED_KEY]'],
    ['svc sk-svcacct-AbCdEfGhIjKlMnOp', 'svc [REDACTED_KEY]'],
    ['stripe sk_live_51HabcdefGHIJ and pk_test_TYooMQauvdEDq54N', 'stripe [REDACTED_KEY] and [REDACTED_KEY]'],
    ['aws AKIAIOSFODNN7EXAMPLE', 'aws [REDACTED_KEY]'],
    ['aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'aws_secret_access_key = [REDACTED_KEY]'],
    ['"secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', '"secretAccessKey": "[REDACTED_KEY]"'],
    ['google AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY done', 'google [REDACTED_KEY] done'],
    ['gh ghp_16C7e42F292c6912E7710c838347Ae178B4a', 'gh [REDACTED_KEY]'],
    ['slack xoxb-123456789012-1234567890123-AbCdEfGhIjKl', 'slack [REDACTED_KEY]'],
    ['Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig', 'Authorization: Bearer [REDACTED_TOKEN]'],
    ['jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c end', 'jwt [REDACTED_TOKEN] end'],
    ['password: hunter2hunter2', 'password: [REDACTED_SECRET]'],
    ['-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c7+\nabc\n-----END RSA PRIVATE KEY-----', '[REDACTED_PRIVATE_KEY]'],
    ['IBAN DE89 3704 0044 0532 0130 00 please', 'IBAN [REDACTED_IBAN] please'],
    ['iban GB82WEST12345698765432.', 'iban [REDACTED_IBAN].'],
    ['call +1 555 010 1234 now', 'call [REDACTED_PHONE] now'],
    ['ring +44 20 7946 0958 or (030) 1234-5678', 'ring [REDACTED_PHONE] or [REDACTED_PHONE]'],
    ['card 4111 1111 1111 1111 exp', 'card [REDACTED_CARD] exp'],
    ['card 4111-1111-1111-1111', 'card [REDACTED_CARD]'],
    ['amex 378282246310005 ok', 'amex [REDACTED_CARD] ok'],
  ])('masks %s', (input, expected) => {
    expect(redact(input)).toBe(expected);
  });

  it('leaves ordinary prose, numbers, identifiers and code alone', () => {
    const untouched = [
      'Order 12345 shipped on 2026-11-22 at 14:30, total 99.95 EUR; see section 4.2.',
      'The request id is 550e8400-e29b-41d4-a716-446655440000 and commit 3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c.',
      'Epoch 1733140800000 ms, port 5432, version 1.2.3-beta.4, IP 192.168.10.100.',
      'const token = getToken(); if (passwordField.value.length < 8) warn();',
      'We use scikit-learn and sk-learn style pipelines; the task-runner skips tests.',
      'Invoice 4111111111111112 failed the checksum; GB00WEST12345698765432 is not an IBAN.',
      'SELECT tenant, count() FROM tokenwatch.requests WHERE model = \'claude-sonnet-4-5\' GROUP BY tenant;',
      'function parse(key: string) { return map.get(key) ?? null; } // api keys live in the vault',
      'The meeting moved from room 12 to room 240 on floor 3; call it a 10-minute walk.',
    ];
    for (const text of untouched) expect(redact(text), text).toBe(text);
  });

  it('stores full, redacted or no content', () => {
    expect(storedContent('a@b.io', 'full')).toBe('a@b.io');
    expect(storedContent('a@b.io', 'redacted')).toBe('[REDACTED_EMAIL]');
    expect(storedContent('a@b.io', 'none')).toBe('');
  });
});
