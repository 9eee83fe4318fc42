import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { areaOf, areaTable, functionTable, summariseProfile, type CallFrame, type CpuProfile } from '../../bench/support/cpu-profile.js';

const frame = (functionName: string, url = '', lineNumber = 0): CallFrame => ({ functionName, url, lineNumber, columnNumber: 0 });

test('areas: Signalbox folders, packages (scoped too), node: modules, wasm, native and V8 pseudo-frames', () => {
  const root = '/repo';
  const cases: [CallFrame, string][] = [
    [frame('route', 'file:///repo/dist/src/server/app.js'), 'signalbox src/server'],
    [frame('main', 'file:///repo/dist/src/main.js'), 'signalbox src/ (top level)'],
    [frame('send', 'file:///repo/node_modules/fastify/lib/reply.js'), 'fastify'],
    [frame('x', '/repo/node_modules/pino/node_modules/sonic-boom/index.js'), 'sonic-boom'],
    [frame('y', 'file:///repo/node_modules/@opentelemetry/api/build/index.js'), '@opentelemetry/api'],
    [frame('read', 'node:internal/streams/readable'), 'node:stream'],
    [frame('write', 'node:_http_outgoing'), 'node:http'],
    [frame('f', 'node:internal/deps/undici/undici'), 'node:deps/undici'],
    [frame('connect', 'node:net'), 'node:net'],
    [frame('wasm-function[20]', 'wasm://wasm/00034eea'), 'wasm'],
    [frame('writev'), '(native)'],
    [frame('(garbage collector)'), '(garbage collector)'],
    [frame('(program)'), '(program)'],
    [frame('(idle)'), '(idle)'],
    [frame('z', 'file:///elsewhere/x.js'), 'other'],
  ];
  for (const [f, area] of cases) assert.equal(areaOf(f, root), area, `${f.functionName} ${f.url}`);
});

test('self time: a sample lasts until the next one, call paths of one function merge, the window cuts', () => {
  const root = mkdtempSync(join(tmpdir(), 'cpu-profile-test-'));
  try {
    // A compiled file whose first line maps to line 11 of src/server/app.ts ("AAUA": source 0, line +10).
    mkdirSync(join(root, 'dist/src/server'), { recursive: true });
    writeFileSync(join(root, 'dist/src/server/app.js.map'), JSON.stringify({ version: 3, file: 'app.js', sources: ['../../../src/server/app.ts'], names: [], mappings: 'AAUA' }));
    const app = pathToFileURL(join(root, 'dist/src/server/app.js')).href;
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)') },
        { id: 2, callFrame: frame('route', app, 0) },
        { id: 3, callFrame: frame('route', app, 0) }, // the same function, reached by another path
        { id: 4, callFrame: frame('send', pathToFileURL(join(root, 'node_modules/fastify/lib/reply.js')).href, 41) },
        { id: 5, callFrame: frame('(idle)') },
        { id: 6, callFrame: frame('(garbage collector)') },
      ],
      startTime: 1000,
      // Samples at 1010, 1030, 1060, 1100, 1150, 1210; the profile ends at 1280.
      samples: [4, 2, 3, 5, 6, 2],
      timeDeltas: [10, 20, 30, 40, 50, 60],
      endTime: 1280,
    };
    const all = summariseProfile(profile, root);
    assert.equal(all.samples, 6);
    assert.equal(all.totalUs, 270);
    assert.equal(all.busyUs, 270 - 50);
    assert.deepEqual(all.functions.map((f) => [f.function, f.location, f.selfUs]), [
      ['route', 'src/server/app.ts:11', 30 + 40 + 70],
      ['(garbage collector)', '', 60],
      ['(idle)', '', 50],
      ['send', 'fastify/lib/reply.js:42', 20],
    ]);
    assert.deepEqual(all.areas, [
      { area: 'signalbox src/server', selfUs: 140 },
      { area: '(garbage collector)', selfUs: 60 },
      { area: '(idle)', selfUs: 50 },
      { area: 'fastify', selfUs: 20 },
    ]);

    // Only the samples taken from 1030 to 1150: the start-up and shutdown of a real run left out.
    const window = summariseProfile(profile, root, { fromUs: 1030, toUs: 1150 });
    assert.equal(window.samples, 4);
    assert.deepEqual(window.areas, [
      { area: 'signalbox src/server', selfUs: 70 },
      { area: '(garbage collector)', selfUs: 60 },
      { area: '(idle)', selfUs: 50 },
    ]);

    const table = functionTable(all, 2).split('\n');
    assert.equal(table.length, 4);
    assert.equal(table[2], '| 1 | 51.9% | 63.6% | 0.1 | `route` | src/server/app.ts:11 |');
    assert.match(areaTable(all), /^\| \(idle\) \| 18\.5% \| - \| 0\.1 \|$/m);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
