import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SETTINGS } from '../../src/config/settings.js';

/** docs/bounds.md's table: the Setting cell of each row. */
function settingCells(): string[] {
  const doc = readFileSync('docs/bounds.md', 'utf8');
  const rows = doc.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| Resource') && !line.startsWith('| ---'));
  assert.ok(rows.length >= 30, `docs/bounds.md has only ${rows.length} rows`);
  return rows.map((row) => row.split(' | ')[1] ?? '');
}

/** A setting that bounds something: a size, a time, or a cap on a count. */
function isBound(unit: string, path: string): boolean {
  return unit.startsWith('bytes') || unit.startsWith('milliseconds') || path.includes('max_');
}

test('docs/bounds.md has a row for every byte, time and cap setting', () => {
  const cells = settingCells().join('\n');
  const bounds = SETTINGS.filter((s) => isBound(s.unit, s.path));
  assert.ok(bounds.length >= 15, `only ${bounds.length} bounding settings found`);
  const missing = bounds.filter((s) => !cells.includes(`\`${s.env}\` (\`${s.path}\`)`)).map((s) => s.env);
  assert.deepEqual(missing, [], 'settings missing from docs/bounds.md (as `ENV` (`config.key`))');
});

test('every constant docs/bounds.md names exists in the file it names', () => {
  let checked = 0;
  for (const cell of settingCells()) {
    const m = /^`([A-Z_]+)`, constant in `([^`]+)`/.exec(cell);
    if (!m) continue;
    const [, name, file] = m;
    assert.match(readFileSync(file!, 'utf8'), new RegExp(`const ${name} = `), `${name} is not a constant of ${file}`);
    checked++;
  }
  assert.ok(checked >= 8, `only ${checked} constants checked`);
});
