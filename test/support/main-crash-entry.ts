/**
 * Test-only entry point: runs the real src/main.ts, and throws (argv[2] = exception) or leaves a
 * rejected promise (rejection) on SIGUSR2, so that a test can crash a running server at a moment
 * it chooses. Nothing in src/ knows about it.
 */
import '../../src/main.js';

const how = process.argv[2];
process.on('SIGUSR2', () => {
  if (how === 'rejection') void Promise.reject(new Error('test rejection'));
  else throw new Error('test crash');
});
