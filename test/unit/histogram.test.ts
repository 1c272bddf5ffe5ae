import { describe, expect, it } from 'vitest';
import { Log2Histogram, renderHistogram } from '../../src/core/histogram.js';

describe('Log2Histogram', () => {
  it('puts values in power-of-two buckets as BCC does', () => {
    expect([0, 1, 2, 3, 4, 7, 8, 1023, 1024].map(Log2Histogram.bucketOf)).toEqual([0, 1, 2, 2, 3, 3, 4, 10, 11]);
  });
  it('exports non-empty range with bounds, count, sum, min, max', () => {
    const h = new Log2Histogram('us');
    for (const v of [1, 5, 6, 100]) h.add(v);
    const j = h.toJSON();
    expect(j.count).toBe(4);
    expect(j.sum).toBe(112);
    expect(j.min).toBe(1);
    expect(j.max).toBe(100);
    expect(j.buckets[0]).toEqual({ low: 1, high: 1, count: 1 });
    expect(j.buckets.find((b) => b.low === 4)).toEqual({ low: 4, high: 7, count: 2 });
    expect(j.buckets.at(-1)).toEqual({ low: 64, high: 127, count: 1 });
  });
  it('answers quantiles with the bucket bound, clamped to the maximum seen', () => {
    const h = new Log2Histogram('ms');
    for (let i = 0; i < 99; i++) h.add(10);
    h.add(5000);
    expect(h.quantile(0.5)).toBe(15);
    expect(h.quantile(0.99)).toBe(15);
    expect(h.quantile(1)).toBe(5000);
  });
  it('merges', () => {
    const a = new Log2Histogram('x'), b = new Log2Histogram('x');
    a.add(1); b.add(1000);
    a.merge(b);
    expect(a.toJSON().count).toBe(2);
    expect(a.max).toBe(1000);
  });
  it('renders bars scaled to the largest bucket', () => {
    const h = new Log2Histogram('us');
    h.add(2, 10); h.add(8, 5);
    const lines = renderHistogram(h.toJSON(), 'rtt', 10);
    expect(lines[1]).toMatch(/2 -> 3 : 10\s+\|\*{10}\|/);
    expect(lines.at(-1)).toMatch(/8 -> 15 : 5\s+\|\*{5} {5}\|/);
    expect(renderHistogram(new Log2Histogram('us').toJSON(), 'empty')[0]).toContain('(none)');
  });
});
