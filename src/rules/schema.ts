import { Ajv } from 'ajv';
import { AJV_STARTUP_OPTIONS } from '../config/ajv-options.js';
import { CLASSIFIER_METHODS } from '../classify/labels.js';
import { OPERATORS } from './conditions.js';
import { MAX_STREAM_HOLD_CHARS, MAX_STREAM_HOLD_MS } from './cascade.js';
import { MAX_SHADOW_CONCURRENCY } from './shadow.js';
import { MAX_STICK_TTL_MS } from './tier-from.js';

/** Arms of one split: a comparison of a few routes, not a lottery. */
export const MAX_SPLIT_ARMS = 16;
/** Tiers of one cascade: each is an answer paid for before the next. */
export const MAX_CASCADE_TIERS = 8;

/**
 * The JSON schema of a rules file, compiled once at module load. Structure only: what needs the
 * whole document (tiers that exist, unique names, reachable rules, valid regexes, known fields) is
 * checked by the compiler, which reports with the same positions.
 */

const scalar = { type: ['string', 'number', 'boolean', 'null'] };
const scalarList = { type: 'array', minItems: 1, items: scalar };
const modelName = { type: 'string', minLength: 1, maxLength: 200 };

const operatorSchemas: Record<(typeof OPERATORS)[number], unknown> = {
  eq: scalar,
  ne: scalar,
  in: scalarList,
  not_in: scalarList,
  gt: { type: 'number' },
  gte: { type: 'number' },
  lt: { type: 'number' },
  lte: { type: 'number' },
  exists: { type: 'boolean' },
  contains: scalar,
  starts_with: { type: 'string' },
  ends_with: { type: 'string' },
  matches: { type: 'string', minLength: 1 },
};

/** Actions a tier and a route share. */
const actionProperties = {
  fallbacks: { type: 'array', items: modelName, maxItems: 20 },
  provider: { type: 'object' },
  max_tokens: { type: 'integer', minimum: 1 },
  params: { type: 'object' },
  system_prompt: {
    type: 'object', minProperties: 1, maxProperties: 1, additionalProperties: false,
    properties: { prepend: { type: 'string', minLength: 1 }, replace: { type: 'string', minLength: 1 } },
  },
  headers: { type: 'object', additionalProperties: { type: 'string' } },
  description: { type: 'string' },
};

/** What a route (and each arm of a split) may say. */
const routeProperties = {
  model: modelName,
  tier: { type: 'string', minLength: 1 },
  pass: { const: true },
  baseline: modelName,
  // The cheapest candidate that fits the request, from the model catalog (src/rules/choose.ts).
  choose: {
    type: 'object', additionalProperties: false, required: ['from'],
    properties: {
      from: { type: 'array', minItems: 1, maxItems: 64, items: modelName },
      by: { const: 'cost' },
      require: { type: 'array', items: { enum: ['tools', 'vision', 'json_mode', 'reasoning'] } },
      otherwise: { enum: ['reject', 'next_rule'] },
    },
  },
  // The tier a field's value names (`model: auto` on classify.complexity; src/rules/tier-from.ts).
  tier_from: {
    type: 'object', additionalProperties: false, required: ['field', 'map'],
    properties: {
      field: { type: 'string', minLength: 1, maxLength: 200 },
      map: { type: 'object', minProperties: 1, maxProperties: 1000, additionalProperties: { type: 'string', minLength: 1 } },
      default: { type: 'string', minLength: 1 },
      raise_below_confidence: { type: 'number', minimum: 0, maximum: 1 },
      stick_by: { type: 'string', minLength: 1, maxLength: 200 },
      stick_ttl_ms: { type: 'integer', minimum: 1, maximum: MAX_STICK_TTL_MS },
    },
  },
  // Proxy-side retries of this rule's requests (the rest from the global settings).
  retry: {
    type: 'object', additionalProperties: false, minProperties: 1,
    properties: {
      max_attempts: { type: 'integer', minimum: 1, maximum: 10 },
      statuses: { type: 'array', items: { type: 'integer', minimum: 400, maximum: 599 } },
      budget_ms: { type: 'integer', minimum: 0 },
    },
  },
  reject: {
    type: 'object', additionalProperties: false, required: ['status'],
    properties: { status: { type: 'integer', minimum: 400, maximum: 599 }, message: { type: 'string', minLength: 1 } },
  },
  ...actionProperties,
};

/** A cascade: the tiers to try in order, and the checks that stop it (src/rules/cascade.ts). */
const cascadeSchema = {
  type: 'object', additionalProperties: false, required: ['tiers'],
  properties: {
    tiers: { type: 'array', minItems: 2, maxItems: MAX_CASCADE_TIERS, items: { type: 'string', minLength: 1 } },
    checks: {
      type: 'object', additionalProperties: false, minProperties: 1,
      properties: {
        min_length: { type: 'integer', minimum: 1, maximum: 100000 },
        refusal_phrases: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 200 } },
        uncertainty_phrases: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 200 } },
        json: { enum: ['auto', true, false] },
      },
    },
    max_escalations: { type: 'integer', minimum: 0, maximum: MAX_CASCADE_TIERS - 1 },
    stream_hold: {
      type: 'object', additionalProperties: false, minProperties: 1,
      properties: { chars: { type: 'integer', minimum: 1, maximum: MAX_STREAM_HOLD_CHARS }, ms: { type: 'integer', minimum: 1, maximum: MAX_STREAM_HOLD_MS } },
    },
  },
};

export const RULES_SCHEMA = {
  $id: 'signalbox-rules',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'rules'],
  properties: {
    version: { const: 1 },
    timezone: { type: 'string', minLength: 1 },
    aliases: { type: 'boolean' },
    // What the team would use without routing (a tier or a model): what routing saves is measured against it.
    baseline: modelName,
    tiers: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$' },
      additionalProperties: {
        type: 'object', additionalProperties: false, required: ['model'],
        properties: { model: modelName, ...actionProperties },
      },
    },
    rules: { type: 'array', items: { $ref: '#/$defs/rule' } },
    // How `classify.*` verdicts are made (docs/classifiers.md); the shipped local model when absent.
    classifier: {
      type: 'object', additionalProperties: false,
      properties: {
        method: { enum: CLASSIFIER_METHODS },
        model_file: { type: 'string', minLength: 1 },
        llm: {
          type: 'object', additionalProperties: false,
          properties: {
  model: modelName,
            prompt_file: { type: 'string', minLength: 1 },
            timeout_ms: { type: 'integer', minimum: 1, maximum: 60000 },
            cache_entries: { type: 'integer', minimum: 0, maximum: 1000000 },
            max_tokens: { type: 'integer', minimum: 1, maximum: 256 },
          },
        },
        hybrid: {
          type: 'object', additionalProperties: false,
          properties: { min_confidence: { type: 'number', minimum: 0, maximum: 1 } },
        },
        embedding: {
          type: 'object', additionalProperties: false,
          properties: {
  model: modelName,
            examples_file: { type: 'string', minLength: 1 },
            k: { type: 'integer', minimum: 1, maximum: 50 },
          },
        },
      },
    },
  },
  $defs: {
    rule: {
      type: 'object', additionalProperties: false, required: ['name', 'route'],
      properties: {
        name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
        description: { type: 'string' },
        when: { $ref: '#/$defs/when' },
        route: {
          type: 'object', additionalProperties: false, minProperties: 1,
          properties: {
            ...routeProperties,
            // Arms of the rule's traffic, each a route (src/rules/split.ts).
            split: {
              type: 'object', additionalProperties: false, required: ['arms'],
              properties: {
                sticky: { type: 'string', minLength: 1, maxLength: 200 },
                arms: {
                  type: 'array', minItems: 2, maxItems: MAX_SPLIT_ARMS,
                  items: {
                    type: 'object', additionalProperties: false, required: ['name', 'weight'], minProperties: 3,
                    properties: { name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' }, weight: { type: 'number', minimum: 0, maximum: 1000000 }, ...routeProperties, cascade: cascadeSchema },
                  },
                },
              },
            },
            cascade: cascadeSchema,
            // A candidate that gets a copy of a sample of the rule's requests (src/rules/shadow.ts).
            shadow: {
              type: 'object', additionalProperties: false, required: ['sample'], minProperties: 2,
              properties: {
                model: modelName,
                tier: { type: 'string', minLength: 1 },
                sample: { type: 'number', minimum: 0, maximum: 1 },
                max_concurrency: { type: 'integer', minimum: 1, maximum: MAX_SHADOW_CONCURRENCY },
                judge: {
                  type: 'object', additionalProperties: false, required: ['model'],
                  properties: { model: modelName, prompt: { type: 'string', minLength: 1, maxLength: 4000 } },
                },
              },
            },
            ...actionProperties,
          },
        },
      },
    },
    when: {
      type: 'object',
      properties: {
        any: { type: 'array', minItems: 1, items: { $ref: '#/$defs/when' } },
        all: { type: 'array', minItems: 1, items: { $ref: '#/$defs/when' } },
        not: { $ref: '#/$defs/when' },
      },
      additionalProperties: { $ref: '#/$defs/matcher' },
    },
    // A scalar (equality) or a map of operators that must all hold.
    matcher: {
      type: ['string', 'number', 'boolean', 'null', 'object'],
      minProperties: 1,
      additionalProperties: false,
      properties: operatorSchemas,
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, ...AJV_STARTUP_OPTIONS });
export const validateRulesDocument = ajv.compile(RULES_SCHEMA);
