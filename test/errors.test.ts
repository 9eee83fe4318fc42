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

test('README.md documents every code of the registry (ERRORS) with its status, type and x-should-retry', () => {
  const documented = documentedErrors();
  const codes = Object.keys(errors.ERRORS) as errors.ErrorCode[];
  assert.ok(codes.length >= 17, `found only ${codes.length} codes`);
  for (const code of codes) {
    const spec: errors.ErrorSpec = errors.ERRORS[code];
    const row = documented.get(code);
    assert.ok(row, `README.md's Errors table has no row for ${code}`);
    assert.equal(row.shouldRetry, String(spec.shouldRetry), `${code}: x-should-retry`);
    // A rule's rejection takes the rule's status, and its type follows.
    assert.equal(row.status, spec.status === 'rule' ? "the rule's" : String(spec.status), `${code}: status`);
    assert.equal(row.type, spec.type === 'rule' ? 'by status' : spec.type, `${code}: type`);
  }
  assert.deepEqual([...documented.keys()].filter((c) => !(c in errors.ERRORS)), [], 'README.md documents codes Signalbox never produces');
});

test('every error class is made from its registry row', () => {
  type AnyErrorClass = new (...args: unknown[]) => errors.SignalboxError;
  const classes = (Object.values(errors) as unknown[]).filter(
    (v): v is AnyErrorClass => typeof v === 'function' && v.prototype instanceof errors.SignalboxError,
  );
  assert.ok(classes.length >= 14, `found only ${classes.length} classes`);
  // Every constructor copes with missing arguments (they only shape the message).
  for (const C of classes.filter((c) => c !== errors.InvalidRequestError && c !== errors.RuleRejectedError)) {
    const error = new C();
    const spec: errors.ErrorSpec = errors.ERRORS[error.code];
    assert.equal(error.status, spec.status, `${C.name}: status`);
    assert.equal(error.type, spec.type, `${C.name}: type`);
    assert.equal(error.shouldRetry, spec.shouldRetry, `${C.name}: shouldRetry`);
    assert.equal(error.name, C.name);
  }
  const rejected = new errors.RuleRejectedError(429, 'slow down');
  assert.deepEqual([rejected.status, rejected.type, rejected.message], [429, 'rate_limit_error', 'slow down']);
  // A detail with replacement patterns is inserted as is.
  assert.equal(new errors.InvalidJsonError('$& $1').message, 'Request body is not valid JSON: $& $1');
});
