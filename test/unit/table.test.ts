import { describe, expect, it } from 'vitest';
import { BoundedTable, OTHER_KEY } from '../../src/core/table.js';

describe('BoundedTable', () => {
  it('folds keys past the cap into one "other" row and counts them', () => {
    const t = new BoundedTable(3, (key) => ({ key, n: 0 }));
    for (let i = 0; i < 10; i++) t.row(`k${i}`).n++;
    t.row('k9').n++; // a folded key seen again is not counted twice
    expect(t.size).toBe(3);
    expect(t.otherRow()).toEqual({ key: OTHER_KEY, n: 8 });
    expect(t.foldedKeys).toBe(7);
    expect(t.row('k0').n).toBe(1);
  });
  it('stays bounded under a million distinct keys', () => {
    const t = new BoundedTable(1000, () => ({ n: 0 }));
    for (let i = 0; i < 1_000_000; i++) t.row(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`).n++;
    expect(t.size).toBe(1000);
    expect(t.foldedKeys).toBe(999_000);
    expect(t.otherRow()!.n).toBe(999_000);
  });
});
