import { createHash, timingSafeEqual } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import { AJV_STARTUP_OPTIONS } from '../config/ajv-options.js';
import { YamlSource, pointerToPath } from '../config/yaml-source.js';
import { ConfigError } from '../errors.js';
import { readBoundedText, readBoundedTextSync } from '../rules-file/loader.js';
import type { Caller, TeamPolicy, UserPolicy } from './caller.js';

/**
 * The keys file (KEYS_FILE, issue 16): who may call Signalbox, and what the rules, limits and
 * budgets know about each caller. Format: docs/keys-and-budgets.md. It holds SHA-256 digests, or
 * the names of environment variables holding keys, never a key in clear; nothing here ever puts
 * a key, a digest or an environment variable's value in a message.
 */

export class KeysError extends ConfigError {
  constructor(file: string, problems: readonly string[]) {
    super(`invalid keys file ${file}`, problems);
    this.name = 'KeysError';
  }
}

/** `[A-Za-z0-9_.-]{1,64}`: a key's or a team's name goes on log lines and metric labels. */
const NAME = '^[A-Za-z0-9_.-]{1,64}$';
/** A `key.<field>` name: what the rules' field syntax reads after `key.`. */
const META_NAME = '^[A-Za-z_][A-Za-z0-9_]{0,63}$';
/** The fields `key.` already reads: a custom field of one of these names would be shadowed. */
const RESERVED_META = new Set(['name', 'tier', 'team']);
/**
 * Most keys in one file: a file is validated and compiled whole on every reload, and each key
 * costs a map entry; a lookup costs one hash and one map probe whatever the count
 * (`npm run bench:accounts`).
 */
export const MAX_KEYS = 10_000;
const MAX_TEAMS = 1000;
const MAX_MODELS = 200;
const MAX_META = 32;

const limits = {
  rpm: { type: 'integer', minimum: 1 },
  tpm: { type: 'integer', minimum: 1 },
  daily_usd: { type: 'number', minimum: 0 },
  monthly_usd: { type: 'number', minimum: 0 },
};

export const KEYS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'keys'],
  properties: {
    version: { const: 1 },
    // Each end user's limits and budgets (USER_SOURCE), unless its key sets its own `users:`.
    users: { type: 'object', additionalProperties: false, properties: limits },
    teams: {
      type: 'object', maxProperties: MAX_TEAMS, propertyNames: { pattern: NAME },
      additionalProperties: { type: 'object', additionalProperties: false, properties: limits },
    },
    keys: {
      type: 'array', maxItems: MAX_KEYS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: NAME },
          sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
          env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' },
          tier: { type: 'string', minLength: 1, maxLength: 64 },
          team: { type: 'string', pattern: NAME },
          models: { type: 'array', maxItems: MAX_MODELS, items: { type: 'string', minLength: 1, maxLength: 200 } },
          ...limits,
          users: { type: 'object', additionalProperties: false, properties: limits },
          meta: {
            type: 'object', maxProperties: MAX_META, propertyNames: { pattern: META_NAME },
            additionalProperties: { type: ['string', 'number', 'boolean'], maxLength: 200 },
          },
        },
      },
    },
  },
} as const;

const validateKeysDocument = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, ...AJV_STARTUP_OPTIONS }).compile(KEYS_SCHEMA);

interface LimitsSpec { rpm?: number; tpm?: number; daily_usd?: number; monthly_usd?: number }
interface KeySpec extends LimitsSpec {
  name: string;
  sha256?: string;
  env?: string;
  tier?: string;
  team?: string;
  models?: string[];
  users?: LimitsSpec;
  meta?: Record<string, string | number | boolean>;
}
interface KeysDocument { version: 1; users?: LimitsSpec; teams?: Record<string, LimitsSpec>; keys: KeySpec[] }

/**
 * The compiled keys: who a presented key is. Frozen; a reload builds a new one.
 */
export class KeyRing {
  /** Identifies this set of keys in reload log lines: a hash of the file's text (which holds digests, never keys). */
  readonly hash: string;
  readonly callers: readonly Caller[];
  /** Each key's caller by the hex of its SHA-256. */
  private readonly byDigest: ReadonlyMap<string, { readonly digest: Buffer; readonly caller: Caller }>;

  constructor(hash: string, entries: readonly { readonly digest: Buffer; readonly caller: Caller }[]) {
    this.hash = hash;
    this.byDigest = new Map(entries.map((e) => [e.digest.toString('hex'), e]));
    this.callers = Object.freeze(entries.map((e) => e.caller));
    Object.freeze(this);
  }

  get size(): number {
    return this.callers.length;
  }

  /**
   * The caller a presented key names, or undefined: one SHA-256 and one map probe, whatever the
   * number of keys. The probe is by the digest of what the client sent, never by the key: its
   * timing can only say how the digest of a guess compares with stored digests, and turning that
   * into a key would take a SHA-256 preimage (the argument behind looking API tokens up by their
   * hash). Comparing every digest in constant time instead cost 0.7 ms per request
   * at 10,000 keys (docs/benchmarks.md). The match is confirmed with timingSafeEqual, and a key's
   * length is irrelevant since only digests are compared.
   */
  lookup(presented: string): Caller | undefined {
    return this.lookupDigest(sha256(presented));
  }

  /** `lookup` of a key already hashed (the client-auth hook hashes once for the admin-key check too). */
  lookupDigest(digest: Buffer): Caller | undefined {
    const entry = this.byDigest.get(digest.toString('hex'));
    return entry !== undefined && timingSafeEqual(entry.digest, digest) ? entry.caller : undefined;
  }
}

export function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** The flat SIGNALBOX_API_KEYS list as a key ring: `key-1`, `key-2`... by position, no metadata. */
export function flatKeyRing(keys: readonly string[]): KeyRing {
  return new KeyRing('flat', keys.map((key, i) => ({ digest: sha256(key), caller: plainCaller(`key-${i + 1}`) })));
}

function plainCaller(name: string): Caller {
  return Object.freeze({ name, tier: undefined, team: undefined, meta: Object.freeze({}), models: undefined, limits: Object.freeze({}), budgets: Object.freeze({}), users: undefined });
}

/**
 * Whether `model` is on a caller's allow-list: an exact id, or `provider/*` for every model of a
 * provider. No allow-list: every model.
 */
export function modelAllowed(caller: Caller | undefined, model: string): boolean {
  const models = caller?.models;
  if (models === undefined) return true;
  for (const allowed of models) {
    if (allowed === model) return true;
    if (allowed.endsWith('/*') && model.startsWith(allowed.slice(0, -1))) return true;
  }
  return false;
}

/**
 * YAML text -> schema -> semantic checks -> KeyRing. Every problem is `file:line:col: what`, in
 * file order; none quotes a digest or a value read from the environment.
 */
export function compileKeys(text: string, file: string, env: NodeJS.ProcessEnv): KeyRing {
  const source = new YamlSource(file, text);
  if (source.syntaxErrors.length > 0) throw new KeysError(file, source.syntaxErrors);
  const raw = source.data;
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new KeysError(file, [`${source.where([])}: expected a mapping with "version: 1" and a "keys" list`]);
  }
  const problems: { path: (string | number)[]; key?: boolean; message: string }[] = [];
  if (!validateKeysDocument(raw)) {
    for (const e of validateKeysDocument.errors ?? []) problems.push(schemaProblem(e));
    throw new KeysError(file, positioned(source, problems));
  }
  const document = raw as unknown as KeysDocument;
  const teams = new Map<string, TeamPolicy>();
  for (const [name, spec] of Object.entries(document.teams ?? {})) {
    teams.set(name, Object.freeze({ name, ...limitsOf(spec), ...budgetsOf(spec) }));
  }
  const defaultUsers = document.users === undefined ? undefined : userPolicyOf(document.users);
  const names = new Map<string, number>();
  const digests: Buffer[] = [];
  const owners: number[] = [];
  const entries: { digest: Buffer; caller: Caller }[] = [];
  document.keys.forEach((spec, i) => {
    const path = ['keys', i];
    const first = names.get(spec.name);
    if (first !== undefined) problems.push({ path: [...path, 'name'], message: `duplicate key name "${spec.name}": key ${first + 1} has it too` });
    else names.set(spec.name, i);
    let digest: Buffer | undefined;
    if ((spec.sha256 === undefined) === (spec.env === undefined)) {
      problems.push({ path, message: `key "${spec.name}": give exactly one of sha256 (the key's SHA-256: \`signalbox keys hash\`) and env (a variable holding the key)` });
    } else if (spec.sha256 !== undefined) {
      digest = Buffer.from(spec.sha256, 'hex');
    } else {
      const value = env[spec.env!];
      // The variable's name only: its value is the key.
      if (value === undefined || value === '') problems.push({ path: [...path, 'env'], message: `key "${spec.name}": the environment variable ${spec.env} is not set (or empty)` });
      else digest = sha256(value);
    }
    if (digest !== undefined) {
      const same = digests.findIndex((d) => d.equals(digest));
      // Two names for one key: which one a request is would depend on the order.
      if (same !== -1) problems.push({ path: [...path, spec.sha256 !== undefined ? 'sha256' : 'env'], message: `key "${spec.name}" is the same key as "${document.keys[owners[same]!]!.name}"` });
      digests.push(digest);
      owners.push(i);
    }
    const team = spec.team === undefined ? undefined : teams.get(spec.team);
    if (spec.team !== undefined && team === undefined) {
      problems.push({ path: [...path, 'team'], message: `unknown team "${spec.team}" (teams: ${[...teams.keys()].join(', ') || 'none'})` });
    }
    for (const name of Object.keys(spec.meta ?? {})) {
      if (RESERVED_META.has(name)) problems.push({ path: [...path, 'meta', name], key: true, message: `meta field "${name}" would be shadowed by key.${name}: choose another name` });
    }
    (spec.models ?? []).forEach((m, j) => {
      if (m.includes('*') && !/^[^*/]+\/\*$/.test(m)) problems.push({ path: [...path, 'models', j], message: `"${m}": a pattern is "provider/*"; other names are exact model ids` });
    });
    if (digest !== undefined) {
      entries.push({
        digest,
        caller: Object.freeze({
          name: spec.name,
          tier: spec.tier,
          team,
          meta: Object.freeze({ ...spec.meta }),
          models: spec.models === undefined ? undefined : Object.freeze([...spec.models]),
          limits: Object.freeze(limitsOf(spec)),
          budgets: Object.freeze(budgetsOf(spec)),
          users: spec.users === undefined ? defaultUsers : userPolicyOf(spec.users),
        }),
      });
    }
  });
  if (problems.length > 0) throw new KeysError(file, positioned(source, problems));
  return new KeyRing(createHash('sha256').update(text).digest('hex').slice(0, 12), entries);
}

function userPolicyOf(spec: LimitsSpec): UserPolicy {
  return Object.freeze({ ...limitsOf(spec), ...budgetsOf(spec) });
}

function limitsOf(spec: LimitsSpec): { rpm?: number; tpm?: number } {
  return { ...(spec.rpm !== undefined && { rpm: spec.rpm }), ...(spec.tpm !== undefined && { tpm: spec.tpm }) };
}

function budgetsOf(spec: LimitsSpec): { dailyUsd?: number; monthlyUsd?: number } {
  return { ...(spec.daily_usd !== undefined && { dailyUsd: spec.daily_usd }), ...(spec.monthly_usd !== undefined && { monthlyUsd: spec.monthly_usd }) };
}

/**
 * A schema error as a positioned message. ajv's messages name the rule broken (a pattern, a
 * type), never the value, so a malformed digest is not echoed.
 */
function schemaProblem(e: ErrorObject): { path: (string | number)[]; key?: boolean; message: string } {
  const path = pointerToPath(e.instancePath);
  const where = path.length === 0 ? 'the file' : path.join('.');
  if (e.keyword === 'additionalProperties') {
    const extra = String((e.params as { additionalProperty: string }).additionalProperty);
    return { path: [...path, extra], key: true, message: `unknown key "${extra}" in ${where}` };
  }
  if (e.keyword === 'propertyNames') {
    return { path: [...path, String((e.params as { propertyName: string }).propertyName)], key: true, message: `invalid name in ${where}: ${e.message ?? ''}` };
  }
  if (e.keyword === 'pattern' && path.at(-1) === 'sha256') return { path, message: `${where} must be 64 hex digits (the key's SHA-256: \`signalbox keys hash\`)` };
  return { path, message: `${where} ${e.message ?? 'is invalid'}` };
}

function positioned(source: YamlSource, problems: readonly { path: (string | number)[]; key?: boolean; message: string }[]): string[] {
  const lines = problems.map((p) => {
      const options = { key: p.key ?? false };
      const pos = source.position(p.path, options);
      return { line: pos?.line ?? 0, col: pos?.col ?? 0, text: `${source.where(p.path, options)}: ${p.message}` };
    });
  lines.sort((a, b) => a.line - b.line || a.col - b.col);
  return [...new Set(lines.map((l) => l.text))];
}

/** Reads and compiles a keys file; every failure, unreadable file included, is a KeysError. */
export function loadKeysFile(file: string, env: NodeJS.ProcessEnv = process.env): KeyRing {
  return compileKeys(asKeysError(file, () => readBoundedTextSync(file, 'keys file')), file, env);
}

/** loadKeysFile without blocking the event loop on the read (hot reloads). */
export async function loadKeysFileAsync(file: string, env: NodeJS.ProcessEnv = process.env): Promise<KeyRing> {
  let text: string;
  try {
    text = await readBoundedText(file, 'keys file');
  } catch (err) {
    throw err instanceof ConfigError ? new KeysError(file, err.problems) : err;
  }
  return compileKeys(text, file, env);
}

function asKeysError(file: string, read: () => string): string {
  try {
    return read();
  } catch (err) {
    throw err instanceof ConfigError ? new KeysError(file, err.problems) : err;
  }
}
