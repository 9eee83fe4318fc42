import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as errors from '../src/errors.js';

interface Row { readonly status: string; readonly type: string; readonly shouldRetry: string }

/** README.md's "Errors" table: code -> its row. */
function documentedErrors(): Map<string, Row> {
  const readme = readFileSync('README.md', 'utf8');
  const start = readme.indexOf('### Errors\n');
  assert.notEqual(start, -1, 'README.md has no "### Errors" section');
  const section = readme.slice(start, readme.indexOf('\n#', start + 1));
  const rows = new Map<string, Row>();
  // Body rows only: the header row's second cell is "Status".
  for (const m of section.matchAll(/^\| `([a-z_]+)` \| (?!Status)([^|]+) \| ([^|]+) \| ([^|]+) \|/gm)) {
    rows.set(m[1]!, { status: m[2]!.trim(), type: m[3]!.trim().replace(/`/g, ''), shouldRetry: m[4]!.trim().replace(/`/g, '') });
  }
  return rows;
}

/** One instance of every error class in the registry, and one per code of InvalidRequestError. */
function everyError(): errors.SignalboxError[] {
  // Every constructor copes with missing arguments (they only shape the message).
  type AnyErrorClass = new (...args: unknown[]) => errors.SignalboxError;
  const classes = (Object.values(errors) as unknown[]).filter(
    (v): v is AnyErrorClass => typeof v === 'function' && v.prototype instanceof errors.SignalboxError,
  );
  const instances = classes.filter((c) => c !== errors.InvalidRequestError).map((C) => new C());
  return [...instances, ...errors.INVALID_REQUEST_CODES.map((code) => new errors.InvalidRequestError('x', code))];
}

test('README.md documents every error code with its status, type and x-should-retry', () => {
  const documented = documentedErrors();
  const all = everyError();
  assert.ok(all.length >= 15, `found only ${all.length} errors`);
  for (const error of all) {
    const row = documented.get(error.code);
    assert.ok(row, `README.md's Errors table has no row for ${error.code}`);
    assert.equal(row.shouldRetry, String(error.shouldRetry), `${error.code}: x-should-retry`);
    // A rule's rejection takes the rule's status, and its type follows.
    if (error instanceof errors.RuleRejectedError) continue;
    assert.equal(row.status, String(error.status), `${error.code}: status`);
    assert.equal(row.type, error.type, `${error.code}: type`);
  }
  const codes = new Set(all.map((e) => e.code));
  assert.deepEqual([...documented.keys()].filter((c) => !codes.has(c)), [], 'README.md documents codes Signalbox never produces');
});
