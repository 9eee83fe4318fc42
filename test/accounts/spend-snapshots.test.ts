import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { MemoryLimitStore } from '../../src/accounts/memory-limit-store.js';
import { MAX_SNAPSHOT_BYTES, SPEND_SNAPSHOT_FILE, SpendSnapshots, type SnapshotTimers } from '../../src/accounts/spend-snapshots.js';

const NOW = 1_800_000_000_000;
const LATER = NOW + 86_400_000;
const KEY = 'sp:key:alice:d:2027-01-15';

function dir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'signalbox-snapshots-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function logger() {
  const lines: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
  return {
    lines,
    warn: (obj: object, msg: string) => lines.push({ level: 'warn', msg, obj: obj as Record<string, unknown> }),
    info: (obj: object, msg: string) => lines.push({ level: 'info', msg, obj: obj as Record<string, unknown> }),
  };
}

/** Timers the test fires by hand. */
function manualTimers(): SnapshotTimers & { fire(): void; active: boolean } {
  let fn: (() => void) | undefined;
  return {
    every: (f) => {
      fn = f;
      return 1;
    },
    clear: () => {
      fn = undefined;
    },
    fire: () => fn?.(),
    get active() {
      return fn !== undefined;
    },
  };
}

function balance(store: MemoryLimitStore, key: string) {
  return store.admit({ takes: [], reserves: [], reads: [key] }, NOW).balances[0];
}

test('a snapshot round trip: spend and end users come back, reservations do not, expired counters are left out', async (t) => {
  const file = join(dir(t), SPEND_SNAPSHOT_FILE);
  const store = new MemoryLimitStore();
  const writer = new SpendSnapshots({ store, file, intervalMs: 1000, logger: logger(), clock: () => NOW, timers: manualTimers() });
  store.settle([], [{ key: KEY, amountNano: 1234, expireAt: LATER }, { key: 'sp:key:old:d:2020-01-01', amountNano: 5, expireAt: NOW - 1 }], NOW - 10);
  store.admit({
    takes: [], reads: [], reserves: [{ key: KEY, capNano: 1e9, amountNano: 100, expireAt: LATER }],
    user: { setKey: 'us:alice', member: 'bob', max: 10, counterPrefix: 'sp:user:alice:', counterSuffixes: [':d:2027-01-15'] },
  }, NOW);
  await writer.close();
  assert.equal((statSync(file).mode & 0o777).toString(8), '600');

  const restored = new MemoryLimitStore();
  const log = logger();
  new SpendSnapshots({ store: restored, file, intervalMs: 1000, logger: log, clock: () => NOW }).load();
  assert.deepEqual(balance(restored, KEY), { spentNano: 1234, reservedNano: 0 });
  assert.deepEqual(restored.snapshot(NOW), { version: 1, counters: [[KEY, 1234, LATER]], users: [['us:alice', ['bob']]] });
  assert.equal(log.lines[0]!.msg, 'spend snapshot loaded');
});

test('written every interval only when the spend changed, never two writes at once, and on close', async (t) => {
  const file = join(dir(t), SPEND_SNAPSHOT_FILE);
  const store = new MemoryLimitStore();
  const timers = manualTimers();
  const writer = new SpendSnapshots({ store, file, intervalMs: 1000, logger: logger(), clock: () => NOW, timers });
  writer.start();
  await writer.write();
  assert.equal(existsSync(file), false, 'nothing spent: nothing written');
  store.settle([], [{ key: KEY, amountNano: 10, expireAt: LATER }], NOW);
  const [a, b] = [writer.write(), writer.write()];
  assert.equal(a, b, 'a second write while one runs joins it');
  await a;
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).counters[0][1], 10);
  writeFileSync(file, 'left alone');
  await writer.write();
  assert.equal(readFileSync(file, 'utf8'), 'left alone', 'unchanged spend: no write');
  store.settle([], [{ key: KEY, amountNano: 5, expireAt: LATER }], NOW);
  await writer.close();
  assert.equal(timers.active, false, 'close stops the timer');
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).counters[0][1], 15, 'close writes the last spend');
});

test('a write that fails is logged once per streak and never thrown; the next good write says so', async (t) => {
  const d = dir(t);
  // A path under a regular file: mkdir and open fail with ENOTDIR, whoever runs the test (root included).
  writeFileSync(join(d, 'not-a-dir'), '');
  const store = new MemoryLimitStore();
  const log = logger();
  const writer = new SpendSnapshots({ store, file: join(d, 'not-a-dir', SPEND_SNAPSHOT_FILE), intervalMs: 1000, logger: log, clock: () => NOW, timers: manualTimers() });
  store.settle([], [{ key: KEY, amountNano: 10, expireAt: LATER }], NOW);
  await writer.write();
  store.settle([], [{ key: KEY, amountNano: 10, expireAt: LATER }], NOW);
  await writer.write();
  assert.deepEqual(log.lines.map((l) => l.level), ['warn']);
  assert.match(log.lines[0]!.msg, /writing the spend snapshot failed/);
});

for (const [name, make] of [
  ['corrupt JSON', (file: string) => writeFileSync(file, '{"version":1,"counters":[[')],
  ['another version', (file: string) => writeFileSync(file, '{"version":2}')],
  ['a file past the size limit (sparse)', (file: string) => {
    writeFileSync(file, '');
    truncateSync(file, MAX_SNAPSHOT_BYTES + 1);
  }],
  ['a symlink to /dev/zero', (file: string) => symlinkSync('/dev/zero', file)],
  ['a FIFO', (file: string) => execFileSync('mkfifo', [file])],
] as const) {
  test(`a snapshot that is ${name}: a warning, an empty store, the file moved aside, no crash and no hang`, (t) => {
    const file = join(dir(t), SPEND_SNAPSHOT_FILE);
    make(file);
    const store = new MemoryLimitStore();
    const log = logger();
    new SpendSnapshots({ store, file, intervalMs: 1000, logger: log, clock: () => NOW }).load();
    assert.deepEqual(store.snapshot(NOW), { version: 1, counters: [], users: [] });
    assert.equal(log.lines.length, 1);
    assert.equal(log.lines[0]!.level, 'warn');
    assert.equal(log.lines[0]!.obj.moved_to, `${file}.corrupt`);
    assert.equal(existsSync(file), false);
  });
}

test('malformed entries of a snapshot are skipped and counted; the good ones load', (t) => {
  const file = join(dir(t), SPEND_SNAPSHOT_FILE);
  writeFileSync(file, JSON.stringify({
    version: 1,
    counters: [[KEY, 7, LATER], ['sp:key:x:d:2027-01-15', -1, LATER], ['sp:key:y:d:2027-01-15', 1.5, LATER], [42, 1, LATER], ['x'.repeat(5000), 1, LATER], 'nonsense'],
    users: [['us:alice', ['bob', 7]], 'nonsense'],
  }));
  const store = new MemoryLimitStore();
  const log = logger();
  new SpendSnapshots({ store, file, intervalMs: 1000, logger: log, clock: () => NOW }).load();
  assert.deepEqual(store.snapshot(NOW), { version: 1, counters: [[KEY, 7, LATER]], users: [['us:alice', ['bob']]] });
  assert.deepEqual([log.lines[0]!.obj.entries, log.lines[0]!.obj.skipped], [2, 6]);
});

test('no snapshot yet: a first start, silently', (t) => {
  const store = new MemoryLimitStore();
  const log = logger();
  new SpendSnapshots({ store, file: join(dir(t), SPEND_SNAPSHOT_FILE), intervalMs: 1000, logger: log }).load();
  assert.deepEqual(log.lines, []);
});
