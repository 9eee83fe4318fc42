import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

/**
 * Outside this repository a bare `npx signalbox` downloads and runs whatever the npm registry
 * holds under that name. The docs show `npx --no-install signalbox`, `node_modules/.bin/signalbox`
 * or the container image instead (issue 11).
 */
const FILES = ['README.md', 'rules.yaml', 'rules.test.yaml', 'config/signalbox.yaml', ...readdirSync('docs').map((f) => `docs/${f}`)];

test('no doc or example file shows a bare `npx signalbox`', () => {
  for (const file of FILES) {
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      assert.doesNotMatch(line, /\bnpx\s+(?!--no-install\s)(?:-\S+\s+)*signalbox\b/, `${file}:${i + 1}: ${line}`);
    });
  }
});

test('the README shows how to check and test rules with the container image', () => {
  const readme = readFileSync('README.md', 'utf8');
  assert.ok(readme.includes('docker run --rm -v "$PWD:/work" signalbox check /work/rules.yaml'));
  assert.ok(readme.includes('docker run --rm -v "$PWD:/work" signalbox test /work/rules.test.yaml'));
});
