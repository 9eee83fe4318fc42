import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { builtinFields } from '../../src/rules/fields.js';

/** The first cell of each row of docs/rules.md's "## Fields" table. */
function documentedFields(): string[] {
  const doc = readFileSync('docs/rules.md', 'utf8');
  const section = doc.slice(doc.indexOf('## Fields'), doc.indexOf('## Conditions'));
  return section.split('\n').filter((line) => line.startsWith('| `')).map((line) => /^\| `([^`]+)`/.exec(line)![1]!);
}

test('docs/rules.md has a row for every built-in field, and no row for a field that does not exist', () => {
  const documented = documentedFields();
  // exact fields by name; prefix fields (`header.<...>`) by their prefix (`header.<name>` in the doc)
  const code = builtinFields().names().map((name) => name.replace(/<\.\.\.>$/, ''));
  const missing = code.filter((name) => !documented.some((row) => (name.endsWith('.') ? row.startsWith(name) && row.includes('<') : row === name)));
  assert.deepEqual(missing, [], 'fields missing from the table in docs/rules.md');
  const unknown = documented.filter((row) => !code.some((name) => (name.endsWith('.') ? row.startsWith(name) : row === name)));
  assert.deepEqual(unknown, [], 'rows of docs/rules.md naming no field');
});
