import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ENDPOINTS, endpointOf } from '../../src/metrics/endpoints.js';

test('each /v1 path maps to its endpoint, query strings ignored', () => {
  const cases: [string, string][] = [
    ['/v1/chat/completions', 'chat'],
    ['/v1/chat/completions?x=1', 'chat'],
    ['/v1/routing/explain', 'explain'],
    ['/v1/models', 'models'],
    ['/v1/models?supported_parameters=tools', 'models'],
    ['/v1/models/openai/gpt-4o-mini', 'models'],
    ['/v1/embeddings', 'embeddings'],
    ['/v1/responses', 'responses'],
    ['/v1/responses/resp_123', 'responses'],
    ['/v1/messages', 'messages'],
    ['/v1/messages/count_tokens', 'messages'],
    ['/v1/completions', 'other'],
    ['/v1/generation?id=gen-1', 'other'],
    ['/v1/chat/completions/', 'other'],
    ['/v1/chat', 'other'],
    ['/v1/', 'other'],
    ['/v1', 'other'],
    ['/v1?x=/v1/models', 'other'],
  ];
  for (const [url, endpoint] of cases) assert.equal(endpointOf(url), endpoint, url);
});

test('paths outside /v1 have no endpoint: probes, /metrics and unknown top-level paths are not counted', () => {
  for (const url of ['/healthz', '/readyz', '/metrics', '/', '/v10/models', '/v1models', '/x/v1/models', '/metrics?v1/']) {
    assert.equal(endpointOf(url), undefined, url);
  }
});

/** The rows of the endpoint table in docs/metrics.md: its first column and the example paths of each row. */
function documentedEndpoints(): { endpoint: string; paths: string[] }[] {
  const text = readFileSync('docs/metrics.md', 'utf8');
  const start = text.indexOf('<!-- endpoints:');
  assert.ok(start !== -1, 'docs/metrics.md has the endpoints table marker');
  const rows = text.slice(start).split('\n').slice(1);
  const table = rows.slice(0, rows.findIndex((l) => !l.startsWith('|')));
  return table.slice(2).map((row) => {
    const [first, paths] = row.split('|').slice(1, 3).map((c) => c.trim());
    return { endpoint: first!.replace(/`/g, ''), paths: [...paths!.matchAll(/`(\/v1[^`]*)`/g)].map((m) => m[1]!) };
  });
}

test('the endpoint list in docs/metrics.md is the list in the code, in the same order', () => {
  assert.deepEqual(documentedEndpoints().map((r) => r.endpoint), [...ENDPOINTS]);
});

test('every path the docs table names maps to its row', () => {
  for (const { endpoint, paths } of documentedEndpoints()) {
    for (const path of paths) assert.equal(endpointOf(path.replace('{id}', 'x')), endpoint, path);
  }
});
