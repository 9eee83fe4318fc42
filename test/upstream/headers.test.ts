import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { test } from 'node:test';
import {
  buildDownstreamHeaders, buildUpstreamHeaders, HeaderNameMatcher, isHeaderPattern, upstreamHeaderOptions, type UpstreamHeaderOptions,
} from '../../src/upstream/headers.js';

const HOP_BY_HOP: Record<string, string> = {
  connection: 'keep-alive',
  'keep-alive': 'timeout=5',
  'proxy-connection': 'keep-alive',
  'proxy-authorization': 'Basic cHJveHk6c2VjcmV0',
  te: 'trailers',
  trailer: 'x-checksum',
  'transfer-encoding': 'chunked',
  upgrade: 'websocket',
};

/** Headers every direction must keep untouched. */
const ORDINARY: Record<string, string> = {
  'content-type': 'application/json',
  'x-generation-id': 'gen-123',
  'retry-after': '7',
  'x-ratelimit-limit': '200',
  'x-ratelimit-remaining': '199',
  'x-ratelimit-reset': '1700000060000',
  'x-foo': 'bar',
};

function upstream(client: IncomingHttpHeaders, options: Partial<Omit<UpstreamHeaderOptions, 'authorization'>> = {}): Record<string, string> {
  return buildUpstreamHeaders(client, upstreamHeaderOptions({ apiKey: undefined, httpReferer: undefined, appTitle: undefined, ...options }), 'req-1');
}

function assertAbsent(headers: Record<string, unknown>, names: readonly string[]): void {
  for (const name of names) assert.equal(name in headers, false, `${name} must be dropped, got ${String(headers[name])}`);
}

function assertKept(headers: Record<string, unknown>, expected: Record<string, string>): void {
  for (const [name, value] of Object.entries(expected)) assert.equal(headers[name], value, `${name} must be kept`);
}

test('upstream: hop-by-hop headers are dropped', () => {
  const out = upstream({ ...HOP_BY_HOP, ...ORDINARY });
  assertAbsent(out, Object.keys(HOP_BY_HOP));
  assertKept(out, ORDINARY);
});

test('upstream: headers named in Connection are dropped', () => {
  const out = upstream({ connection: 'x-secret-hop, close', 'x-secret-hop': 'hidden', 'x-foo': 'bar' });
  assertAbsent(out, ['connection', 'x-secret-hop']);
  assert.equal(out['x-foo'], 'bar');
});

test('upstream: host, content-length, cookie, expect and forwarding headers are dropped', () => {
  const dropped = {
    host: 'signalbox.internal:8080',
    'content-length': '42',
    cookie: 'session=abc',
    expect: '100-continue',
    'x-forwarded-for': '10.0.0.7',
    forwarded: 'for=10.0.0.7',
    'x-real-ip': '10.0.0.7',
  };
  const out = upstream({ ...dropped, ...ORDINARY });
  assertAbsent(out, Object.keys(dropped));
  assertKept(out, ORDINARY);
});

test('upstream: accept-encoding becomes identity', () => {
  assert.equal(upstream({ 'accept-encoding': 'gzip, br' })['accept-encoding'], 'identity');
  assert.equal(upstream({})['accept-encoding'], 'identity');
});

test('upstream: x-request-id is the request id, replacing the client value', () => {
  const options = upstreamHeaderOptions({ apiKey: undefined, httpReferer: undefined, appTitle: undefined });
  assert.equal(buildUpstreamHeaders({ 'x-request-id': 'client-id' }, options, 'req-42')['x-request-id'], 'req-42');
});

test('upstream: the options are built once, with the Authorization value made from the server key, and serve every request', () => {
  const options = upstreamHeaderOptions({ apiKey: 'sk-or-server', httpReferer: 'https://example.com', appTitle: 'App' });
  assert.equal(options.authorization, 'Bearer sk-or-server');
  assert.ok(Object.isFrozen(options));
  assert.equal('requestId' in options, false, 'the request id is an argument, not an option');
  const first = buildUpstreamHeaders({ authorization: 'Bearer sk-client' }, options, 'req-1');
  const second = buildUpstreamHeaders({}, options, 'req-2');
  assert.deepEqual([first.authorization, first['x-request-id'], second.authorization, second['x-request-id']], ['Bearer sk-or-server', 'req-1', 'Bearer sk-or-server', 'req-2']);
  assert.equal(upstreamHeaderOptions({ apiKey: undefined, httpReferer: undefined, appTitle: undefined }).authorization, undefined);
});

test('upstream: the server key replaces the client authorization', () => {
  const out = upstream({ authorization: 'Bearer sk-client' }, { apiKey: 'sk-or-server' });
  assert.equal(out.authorization, 'Bearer sk-or-server');
});

test('upstream: without a server key the client authorization is forwarded', () => {
  assert.equal(upstream({ authorization: 'Bearer sk-client' }).authorization, 'Bearer sk-client');
});

test('upstream: no authorization when neither client nor server has one', () => {
  assert.equal('authorization' in upstream({ 'x-foo': 'bar' }), false);
});

test('upstream: configured referer and title win over the client ones', () => {
  const out = upstream(
    { 'http-referer': 'https://client.example', 'x-title': 'Client App', 'x-openrouter-title': 'Client OR App' },
    { httpReferer: 'https://server.example', appTitle: 'Server App' },
  );
  assert.equal(out['http-referer'], 'https://server.example');
  assert.equal(out['x-title'], 'Server App');
  assert.equal(out['x-openrouter-title'], 'Server App');
});

test('upstream: without config the client referer and titles are forwarded', () => {
  const out = upstream({ 'http-referer': 'https://client.example', 'x-title': 'Client App', 'x-openrouter-title': 'Client OR App' });
  assert.equal(out['http-referer'], 'https://client.example');
  assert.equal(out['x-title'], 'Client App');
  assert.equal(out['x-openrouter-title'], 'Client OR App');
});

test('upstream: no referer or title headers when neither side sets them', () => {
  assertAbsent(upstream({}), ['http-referer', 'x-title', 'x-openrouter-title']);
});

test('downstream: hop-by-hop headers are dropped', () => {
  const out = buildDownstreamHeaders({ ...HOP_BY_HOP, ...ORDINARY }, { keepContentLength: true });
  assertAbsent(out, Object.keys(HOP_BY_HOP));
  assertKept(out, ORDINARY);
});

test('downstream: headers named in Connection are dropped', () => {
  const out = buildDownstreamHeaders({ connection: 'x-secret-hop, close', 'x-secret-hop': 'hidden', 'x-foo': 'bar' }, { keepContentLength: true });
  assertAbsent(out, ['connection', 'x-secret-hop']);
  assert.equal(out['x-foo'], 'bar');
});

test('downstream: set-cookie, date, alt-svc and strict-transport-security are dropped', () => {
  const dropped = {
    'set-cookie': ['a=b', 'c=d'],
    date: 'Mon, 01 Jan 2024 00:00:00 GMT',
    'alt-svc': 'h3=":443"',
    'strict-transport-security': 'max-age=31536000',
  };
  const out = buildDownstreamHeaders({ ...dropped, ...ORDINARY }, { keepContentLength: true });
  assertAbsent(out, Object.keys(dropped));
  assertKept(out, ORDINARY);
});

test('downstream: content-length is kept only with keepContentLength', () => {
  const headers = { 'content-length': '123', ...ORDINARY };
  assert.equal(buildDownstreamHeaders(headers, { keepContentLength: true })['content-length'], '123');
  const without = buildDownstreamHeaders(headers, { keepContentLength: false });
  assert.equal('content-length' in without, false);
  assertKept(without, ORDINARY);
});

test('STRIP_HEADERS: exact names and trailing-* prefixes are not forwarded, whatever the case in the setting', () => {
  const strip = new HeaderNameMatcher(['X-Signalbox-*', 'X-User-Tier']);
  // Node hands request header names over in lower case.
  const out = upstream({ ...ORDINARY, 'x-signalbox-debug': '1', 'x-signalbox-': 'empty rest', 'x-user-tier': 'pro', 'x-user-tier-2': 'kept', 'x-signalbo': 'kept' }, { strip });
  assertAbsent(out, ['x-signalbox-debug', 'x-signalbox-', 'x-user-tier']);
  assertKept(out, { ...ORDINARY, 'x-user-tier-2': 'kept', 'x-signalbo': 'kept' });
});

test('STRIP_HEADERS also covers the client headers the proxy copies itself', () => {
  const client = { authorization: 'Bearer sk-client', 'http-referer': 'https://app', 'x-title': 'App', 'x-openrouter-title': 'App' };
  const out = upstream(client, { strip: new HeaderNameMatcher(['authorization', 'http-referer', 'x-*']) });
  assertAbsent(out, ['authorization', 'http-referer', 'x-title', 'x-openrouter-title']);
  // What the proxy sets itself is not the client's, and stays.
  assert.equal(out['x-request-id'], 'req-1');
  const configured = upstream(client, { apiKey: 'sk-server', appTitle: 'Mine', strip: new HeaderNameMatcher(['authorization', 'x-*']) });
  assertKept(configured, { authorization: 'Bearer sk-server', 'x-title': 'Mine', 'x-openrouter-title': 'Mine' });
});

test('isHeaderPattern takes header names and prefixes, nothing else', () => {
  for (const ok of ['x-user-tier', 'X-Team', 'x-signalbox-*', "x!#$%&'+.^_`|~9-*"]) assert.equal(isHeaderPattern(ok), true, ok);
  for (const bad of ['', '*', 'x-*-y', 'x-a**', 'x tier', 'x-tier:', 'x-é', 'x-a\n']) assert.equal(isHeaderPattern(bad), false, JSON.stringify(bad));
});

test('upstream: every forwarding and client-address header is dropped (issue 12, D15)', () => {
  const forwarding: Record<string, string> = {
    'x-forwarded-for': '10.0.0.7', 'x-forwarded-host': 'internal.example', 'x-forwarded-proto': 'http',
    'x-forwarded-port': '8080', 'x-forwarded-server': 'lb-3.internal', 'x-forwarded-prefix': '/team-a',
    'x-forwarded-uri': '/v1/chat/completions', 'x-forwarded-ssl': 'on', 'x-forwarded-scheme': 'https',
    'x-forwarded-client-cert': 'Hash=abc', forwarded: 'for=10.0.0.7', via: '1.1 lb-3.internal',
    'x-real-ip': '10.0.0.7', 'true-client-ip': '10.0.0.7', 'cf-connecting-ip': '10.0.0.7', 'cf-connecting-ipv6': '::1',
    'x-client-ip': '10.0.0.7', 'x-cluster-client-ip': '10.0.0.7', 'fastly-client-ip': '10.0.0.7',
    'x-original-forwarded-for': '10.0.0.7', 'x-envoy-external-address': '10.0.0.7', 'x-azure-clientip': '10.0.0.7',
  };
  const out = upstream({ ...forwarding, ...ORDINARY });
  assertAbsent(out, Object.keys(forwarding));
  assertKept(out, ORDINARY);
});

test("downstream: the proxy's own headers (x-request-id, x-signalbox-*) never come from upstream (issue 12, D14)", () => {
  const out = buildDownstreamHeaders({
    ...ORDINARY, 'x-request-id': 'upstream-id', 'x-signalbox-rule': 'forged', 'x-signalbox-model': 'forged/model',
    'x-signalbox-attempts': '9', 'x-signalbox-overhead-ms': '0',
  }, { keepContentLength: true });
  assertAbsent(out, ['x-request-id', 'x-signalbox-rule', 'x-signalbox-model', 'x-signalbox-attempts', 'x-signalbox-overhead-ms']);
  assertKept(out, ORDINARY);
});

test('downstream: the server key is scrubbed from every header value, arrays included (issue 12, D24)', () => {
  const key = 'sk-or-v1-echoed-key';
  const out = buildDownstreamHeaders({
    ...ORDINARY, 'www-authenticate': `Bearer realm="or", error="invalid_token", token="${key}"`, 'x-debug': [`a ${key}`, 'b'],
  }, { keepContentLength: true, secret: key });
  assert.equal(out['www-authenticate'], 'Bearer realm="or", error="invalid_token", token="[redacted]"');
  assert.deepEqual(out['x-debug'], ['a [redacted]', 'b']);
  assertKept(out as Record<string, string>, ORDINARY);
});
