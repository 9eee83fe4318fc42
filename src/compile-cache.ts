import * as nodeModule from 'node:module';

/**
 * Turns on Node's on-disk compile cache (node:module `enableCompileCache`, Node >= 22.1; absent on
 * Node 20, which then simply compiles every start): a restarted process reuses the V8 code cache of
 * Fastify, ajv, pino, yaml and our own modules instead of compiling them again.
 * https://nodejs.org/api/module.html#moduleenablecompilecachecachedir
 *
 * The directory is Node's choice: NODE_COMPILE_CACHE when set, else `node-compile-cache` in the OS
 * temporary directory (/tmp in the image, writable by its `node` user). Node reports a cache it
 * cannot write in the status it returns (not needed here) and never throws: start-up goes on without it.
 *
 * Only modules loaded after this call are cached, and an ES module's static imports are all
 * compiled before its body runs: so the entry points call this first and import the rest with
 * `await import()`.
 */
export function enableCompileCache(): void {
  const enable = (nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache;
  if (typeof enable === 'function') enable();
}
