import type { Options } from 'ajv';

/**
 * Options every Ajv instance of Signalbox adds to its own. The schemas are fixed in the code, so
 * checking them against JSON Schema's meta-schema at every start (`validateSchema`, which first
 * compiles the meta-schema itself) and optimising the generated code (run once per load) only
 * slow the start: together about 140 ms of a 690 ms cold start (--cpu-prof). Strict mode still rejects unknown
 * keywords at compile time, and test/config/ajv-options.test.ts checks each schema against the
 * meta-schema.
 */
export const AJV_STARTUP_OPTIONS = { validateSchema: false, code: { optimize: false } } as const satisfies Options;
