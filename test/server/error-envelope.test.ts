import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InternalError, InvalidJsonError, ShuttingDownError, UpstreamTimeoutError, UpstreamUnreachableError } from '../../src/errors.js';
import { toOpenAIError } from '../../src/server/error-envelope.js';

test('x-should-retry is the error class\'s value while the proxy made at most one upstream attempt', () => {
  assert.deepEqual(toOpenAIError(new ShuttingDownError()).headers, { 'x-should-retry': 'true' });
  assert.deepEqual(toOpenAIError(new UpstreamTimeoutError('headers', 10), { upstreamAttempts: 1 }).headers, { 'x-should-retry': 'true' });
  assert.deepEqual(toOpenAIError(new UpstreamUnreachableError('refused'), { upstreamAttempts: 1 }).headers, { 'x-should-retry': 'true' });
  assert.deepEqual(toOpenAIError(new InvalidJsonError('x')).headers, { 'x-should-retry': 'false' });
  assert.deepEqual(toOpenAIError(new InternalError()).headers, { 'x-should-retry': 'false' });
  // Not Signalbox's own: mapped first, then its class decides.
  assert.deepEqual(toOpenAIError(new Error('boom')).headers, { 'x-should-retry': 'false' });
  assert.deepEqual(toOpenAIError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', message: 'too large' }).headers, { 'x-should-retry': 'false' });
});

test('x-should-retry is false for every error once the proxy retried', () => {
  for (const error of [new ShuttingDownError(), new UpstreamTimeoutError('connect', 10), new UpstreamUnreachableError('reset')]) {
    assert.deepEqual(toOpenAIError(error, { upstreamAttempts: 2 }).headers, { 'x-should-retry': 'false' }, error.code);
  }
});
