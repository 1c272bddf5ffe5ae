/** The running kernel's enum skb_drop_reason, read from its BTF once for everything that names or classes frees. */
import { addon } from './addon.js';

let entries: Array<[string, number]> | null | undefined;

/** [name, value] pairs of enum skb_drop_reason; null when the kernel has none (< 5.17) or its BTF cannot be read. */
export function kernelDropReasonEnum(): Array<[string, number]> | null {
  if (entries === undefined) {
    try {
      entries = addon().kernelBtfEnum('skb_drop_reason');
    } catch {
      entries = null;
    }
  }
  return entries;
}
