import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { LogCapture } from './harness.js';

function line(fields: Record<string, unknown>): string {
  return `${JSON.stringify({ level: 30, ...fields })}\n`;
}

async function write(capture: LogCapture, text: string): Promise<void> {
  if (!capture.write(text)) await once(capture, 'drain');
}

test('LogCapture: many concurrent waiters resolve without a MaxListenersExceededWarning', async (t) => {
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w);
  };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));

  const capture = new LogCapture();
  const waits = Array.from({ length: 25 }, (_, i) => capture.requestLine(`r${i}`));
  assert.equal(capture.waiting, 25);
  for (let i = 0; i < 25; i++) await write(capture, line({ msg: 'request', reqId: `r${i}` }));
  const records = await Promise.all(waits);
  assert.deepEqual(records.map((r) => r.reqId), Array.from({ length: 25 }, (_, i) => `r${i}`));
  assert.equal(capture.waiting, 0);
  // A warning is emitted on the next tick after the listener that crossed the limit was added.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(warnings.map((w) => w.name), []);
});

test('LogCapture: a line that never comes fails the wait after its timeout and leaves no waiter', async () => {
  const capture = new LogCapture();
  await assert.rejects(capture.waitFor((r) => r.msg === 'never', 20), /no log line matched within 20 ms/);
  assert.equal(capture.waiting, 0);
});

test('LogCapture: a line written before the wait resolves it at once', async () => {
  const capture = new LogCapture();
  await write(capture, line({ msg: 'early' }));
  assert.equal((await capture.waitFor((r) => r.msg === 'early', 20)).msg, 'early');
});
