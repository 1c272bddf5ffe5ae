/** errno names from the running platform (os.constants.errno), e.g. 111 -> "ECONNREFUSED" on Linux. */
import { constants } from 'node:os';

const names = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) if (!names.has(value)) names.set(value, name);

export function errnoName(err: number): string {
  if (err === 0) return '';
  return names.get(Math.abs(err)) ?? `errno ${Math.abs(err)}`;
}

/** errno numbers by name on this platform (undefined when the platform lacks one). */
export const ERRNO = constants.errno as Readonly<Record<string, number>>;
