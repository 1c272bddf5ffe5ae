/** Bounded Prometheus label values and the --prometheus listen address. */
import { describe, expect, it } from 'vitest';
import { BoundedLabels, parseListenAddress } from '../../src/tools/prometheus/index.js';

describe('prometheus exporter pieces', () => {
  it('keeps the first max label values and folds the rest into "other", counting each folded key once', () => {
    const l = new BoundedLabels(2);
    expect(['a', 'b', 'c', 'a', 'd', 'c'].map((k) => l.label(k))).toEqual(['a', 'b', 'other', 'a', 'other', 'other']);
    expect(l.folded).toBe(2);
  });
  it('parses listen addresses, loopback by default, and rejects bad ones', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListenAddress('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseListenAddress(':9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseListenAddress('9100')).toEqual({ host: '127.0.0.1', port: 9100 });
    for (const bad of ['localhost', '1.2.3.4:99999', '[::1]', 'a:b']) expect(() => parseListenAddress(bad)).toThrow(/invalid listen address/);
  });
});
