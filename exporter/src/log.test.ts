// Error text for people: whatever was thrown, a message, never "[object Object]", never a secret.
import { describe, expect, it } from 'vitest';
import { errorText } from './log.ts';

describe('errorText', () => {
  it('names what went wrong whatever was thrown', () => {
    expect(errorText(new Error('disk full'))).toBe('disk full');
    // A library's plain object (a full disk in the embedded engine printed "[object Object]").
    expect(errorText({ message: 'No space left on device', code: 'ENOSPC' })).toBe('No space left on device (ENOSPC)');
    expect(errorText({ errno: 28 })).toBe('{"errno":28}');
    expect(errorText('plain text')).toBe('plain text');
    expect(errorText({ message: 'cannot connect to postgres://app:hunter2@db/app' })).not.toContain('hunter2');
  });
});
