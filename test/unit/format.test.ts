import { describe, expect, it } from 'vitest';
import { jsonText, safeText } from '../../src/core/format.js';

describe('output escaping', () => {
  const hostile = 'a\x1b]0;pwn\x07\ufffd\u009bz\n\u202eevil';
  it('safeText escapes C0, DEL, C1 and bidi overrides for terminals', () => {
    expect(safeText(hostile)).toBe('a\\x1b]0;pwn\\x07\ufffd\\x9bz\\x0a\\u202eevil');
  });
  it('jsonText writes C1 controls and bidi overrides as \\u escapes; values round-trip', () => {
    const text = jsonText({ comm: hostile });
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e]/);
    expect(JSON.parse(text)).toEqual({ comm: hostile });
  });
});
