/** Test fixture: private namespaces joined by a veth pair. The class lives in src/cli (the `--demo` uses it, and
 * nothing in src/ may import src/testing); tests, benchmarks and scripts keep importing it from here. */
export * from '../cli/netns.js';
