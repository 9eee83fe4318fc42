import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BodyTooLargeError, InternalError, InvalidJsonError, ModelNotAllowedError, RateLimitExceededError, RouteNotFoundError, ShuttingDownError, UnauthorizedError,
  UpstreamTimeoutError, UpstreamUnreachableError,
} from '../../src/errors.js';
import { envelopeOf, toClientError } from '../../src/server/error-envelope.js';

test('x-should-retry is the error class\'s value while the proxy made at most one upstream attempt', () => {
  assert.deepEqual(toClientError(new ShuttingDownError()).headers, { 'x-should-retry': 'true' });
  assert.deepEqual(toClientError(new UpstreamTimeoutError('headers', 10), { upstreamAttempts: 1 }).headers, { 'x-should-retry': 'true' });
  assert.deepEqual(toClientError(new UpstreamUnreachableError('refused'), { upstreamAttempts: 1 }).headers, { 'x-should-retry': 'true' });
  assert.deepEqual(toClientError(new InvalidJsonError('x')).headers, { 'x-should-retry': 'false' });
  assert.deepEqual(toClientError(new InternalError()).headers, { 'x-should-retry': 'false' });
  // Not Signalbox's own: mapped first, then its class decides.
  assert.deepEqual(toClientError(new Error('boom')).headers, { 'x-should-retry': 'false' });
  assert.deepEqual(toClientError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', message: 'too large' }).headers, { 'x-should-retry': 'false' });
});

test('x-should-retry is false for every error once the proxy retried', () => {
  for (const error of [new ShuttingDownError(), new UpstreamTimeoutError('connect', 10), new UpstreamUnreachableError('reset')]) {
    assert.deepEqual(toClientError(error, { upstreamAttempts: 2 }).headers, { 'x-should-retry': 'false' }, error.code);
  }
});

test('Anthropic\'s envelope for the Messages API: its error types by status, the stable code leading the message', () => {
  assert.equal(envelopeOf('/v1/messages'), 'anthropic');
  assert.equal(envelopeOf('/v1/messages?beta=true'), 'anthropic');
  assert.equal(envelopeOf('/v1/messages/count_tokens'), 'anthropic');
  assert.equal(envelopeOf('/v1/messagesx'), 'openai');
  assert.equal(envelopeOf('/v1/chat/completions'), 'openai');
  const limited = toClientError(new RateLimitExceededError('requests per minute of key a (1)'), { envelope: 'anthropic' });
  assert.equal(limited.status, 429);
  assert.deepEqual(limited.body, { type: 'error', error: { type: 'rate_limit_error', message: 'rate_limit_exceeded: Rate limit reached: requests per minute of key a (1)' } });
  assert.equal(limited.headers['x-should-retry'], 'true');
  const types = [new InvalidJsonError('x'), new UnauthorizedError(), new ModelNotAllowedError('m'), new RouteNotFoundError('GET', '/v1/x'), new BodyTooLargeError(10), new ShuttingDownError(), new InternalError({})]
    .map((e) => (toClientError(e, { envelope: 'anthropic' }).body as { error: { type: string } }).error.type);
  assert.deepEqual(types, ['invalid_request_error', 'authentication_error', 'permission_error', 'not_found_error', 'request_too_large', 'overloaded_error', 'api_error']);
});
