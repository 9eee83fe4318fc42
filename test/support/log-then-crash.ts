/**
 * Test-only process: logs `count` lines through the stdout logger in one synchronous run (so
 * neither minLength nor the periodic flush has written them), then ends as `how` says. Spawned by
 * test/server/logger.test.ts to prove that a crash loses no line already recorded.
 * Usage: node log-then-crash.js <exception|rejection|exit> <count>
 */
import { createLogger, flushLogOnCrash } from '../../src/server/logger.js';

const [how, count] = process.argv.slice(2);
const logger = createLogger('info');
flushLogOnCrash(logger);
// One synchronous run, in a callback: a throw at a module's top level would reach Node as the
// rejection of the module's evaluation, not as an uncaught exception.
setImmediate(() => {
  for (let i = 0; i < Number(count); i++) logger.info({ line: i }, 'before the crash');
  if (how === 'exception') throw new Error('test crash');
  if (how === 'rejection') void Promise.reject(new Error('test rejection'));
  if (how === 'exit') process.exit(3);
});
