/** Diagnoses from kernel evidence: the engine (./engine.ts), what it weighs (./evidence.ts) and which kernel
 * frees are harmless (./frees.ts). */
export * from './engine.js';
export * from './evidence.js';
export * from './frees.js';
