import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ajv } from 'ajv';
import { buildSchema } from '../../src/config/load.js';
import { CASES_SCHEMA } from '../../src/rules/cases.js';
import { RULES_SCHEMA } from '../../src/rules/schema.js';

// Signalbox's Ajv instances skip the meta-schema check at start (AJV_STARTUP_OPTIONS); it is made here.
for (const [name, schema] of [['config', buildSchema()], ['rules', RULES_SCHEMA], ['cases', CASES_SCHEMA]] as const) {
  test(`the ${name} schema is a valid JSON Schema`, () => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true });
    assert.equal(ajv.validateSchema(schema), true, ajv.errorsText(ajv.errors));
  });
}

test('the meta-schema check catches a broken schema (the test above can fail)', () => {
  const ajv = new Ajv();
  assert.equal(ajv.validateSchema({ type: 'object', properties: { a: { type: 'no-such-type' } } }), false);
});
