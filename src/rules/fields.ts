import type { IncomingHttpHeaders } from 'node:http';
import type { BudgetFields } from '../accounts/budget.js';
import type { Caller } from '../accounts/caller.js';
import type { Catalog, CatalogModel } from '../catalog/catalog.js';
import { CAPABILITIES, perMillion, supports } from '../catalog/capabilities.js';
import { requestEstimateUsd } from '../catalog/cost.js';
import { contextNeeded, DEFAULT_COMPLETION_TOKENS, isImagePart } from '../catalog/estimate.js';
import type { ClassifierConfig } from '../classify/config.js';
import type { Classification } from '../classify/labels.js';
import { classifierInput } from '../classify/window.js';
import type { JsonObject, ResolvedFields } from './decision.js';
import { chatView, type Api } from './shapes.js';

/**
 * The fields a rule condition can read, as a registry: a field is found by its exact name or by
 * a prefix (`header.`, `body.`), and compiled once, at load, into a getter. Later features add
 * their own prefixes (`key.`, `budget.`, `classify.`) with `register` and nothing else changes.
 */

/**
 * What a getter reads from, one per decision. Most decisions read neither the time nor a derived
 * field, so neither the Date nor the memo Map exists until a getter asks for it: a decision over
 * rules on headers and body paths allocates nothing here but this object (issue 13, item 3).
 */
export class EvalInput {
  readonly headers: IncomingHttpHeaders;
  /** The client's own body, in its own shape (`body.*` fields). */
  readonly body: Readonly<JsonObject>;
  /** The request's shape: chat completions, Responses or Messages (`request.api`). */
  readonly api: Api;
  private readonly fixedNow: Date | undefined;
  private readonly clock: (() => Date) | undefined;
  /** The model catalog in force, for `model.*` and the cost estimate; undefined without one. */
  readonly catalog: Catalog | undefined;
  /** What the asynchronous step resolved before evaluation (src/classify/resolver.ts): verdicts that needed I/O. */
  readonly resolved: ResolvedFields | undefined;
  /** Who the request's key says the caller is (`key.*`); undefined without client keys. */
  readonly caller: Caller | undefined;
  /** The request's classification once a rule read `classify.*`: at most one per request, none when no rule asks. */
  verdict: Classification | undefined;
  private time: Date | undefined;
  private cache: Map<string, unknown> | undefined;
  private chat: Readonly<JsonObject> | undefined;

  /**
   * `now` fixes the evaluation time; otherwise `clock` (default: the system clock) is called at
   * most once, the first time a `time.*` field is read.
   */
  constructor(headers: IncomingHttpHeaders, body: Readonly<JsonObject>, now?: Date, clock?: () => Date, catalog?: Catalog, resolved?: ResolvedFields, caller?: Caller, api: Api = 'chat') {
    this.headers = headers;
    this.api = api;
    this.caller = caller;
    this.body = body;
    this.catalog = catalog;
    this.resolved = resolved;
    this.fixedNow = now;
    this.clock = clock;
  }

  /**
   * The body in the chat shape, which `request.*` and `classify.*` read (src/rules/shapes.ts): the
   * body itself for chat, built on first read (once per body: chatView keeps it) for the other shapes.
   */
  get view(): Readonly<JsonObject> {
    // Kept here too: fields read it many times per decision, a property is cheaper than the WeakMap.
    return (this.chat ??= chatView(this.api, this.body));
  }

  /** Evaluation time; injectable so that `time.*` rules can be tested. Fixed for the decision once read. */
  get now(): Date {
    return (this.time ??= this.fixedNow ?? (this.clock ? this.clock() : new Date()));
  }

  /** Per-decision cache of derived fields and `matches` results, filled only when a rule asks for them. */
  get memo(): Map<string, unknown> {
    return (this.cache ??= new Map());
  }
}

export type FieldGetter = (input: EvalInput) => unknown;

export interface FieldOptions {
  /** Time zone of `time.*` fields (IANA name). */
  readonly timezone: string;
  /** The rules file's `classifier:` block, compiled (its local model is the shipped one when the file has none). */
  readonly classifier?: ClassifierConfig | undefined;
}

export interface FieldDefinition {
  /** `exact`: the field is this name; `prefix`: the name starts with it and the rest is an argument. */
  readonly match: 'exact' | 'prefix';
  readonly name: string;
  readonly description: string;
  /**
   * Compiles the getter for one field name, or returns an error message (bad argument).
   * `rest` is what follows the prefix (empty for exact fields).
   */
  compile(rest: string, options: FieldOptions): FieldGetter | string;
}

export class FieldRegistry {
  private readonly exact = new Map<string, FieldDefinition>();
  private readonly prefixes: FieldDefinition[] = [];

  register(definition: FieldDefinition): this {
    if (definition.match === 'exact') this.exact.set(definition.name, definition);
    else this.prefixes.push(definition);
    return this;
  }

  /** The getter for `field`, or an error message naming what is wrong. */
  compile(field: string, options: FieldOptions): FieldGetter | string {
    const exact = this.exact.get(field);
    if (exact) return exact.compile('', options);
    for (const def of this.prefixes) {
      if (field.startsWith(def.name)) return def.compile(field.slice(def.name.length), options);
    }
    return `unknown field "${field}" (known: ${this.names().join(', ')})`;
  }

  names(): string[] {
    return [...this.exact.keys(), ...this.prefixes.map((d) => `${d.name}<...>`)];
  }
}

/** The catalog's entry for the model the client asked for; undefined without a catalog or for an unknown model. */
function requestedModel(input: EvalInput): CatalogModel | undefined {
  const model = input.body.model;
  return typeof model === 'string' && input.catalog !== undefined ? input.catalog.get(model) : undefined;
}

/** Memoises a derived field per request: computed the first time a rule reads it, never otherwise. */
function derived(key: string, compute: (input: EvalInput) => unknown): FieldGetter {
  return (input) => {
    if (input.memo.has(key)) return input.memo.get(key);
    const value = compute(input);
    input.memo.set(key, value);
    return value;
  };
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Node decodes header bytes as latin1; a client that sent UTF-8 (a team name with an accent)
 * means the UTF-8 text, so non-ASCII values are re-decoded.
 */
function headerText(value: string): string {
  return NON_ASCII.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value;
}

/** A body path: dot-separated keys; numeric segments index arrays, negative ones from the end. */
export function compilePath(path: string): ((root: unknown) => unknown) | string {
  const keys = path.split('.');
  if (keys.some((s) => s === '')) return `bad path "${path}": empty segment`;
  const indexes = keys.map((s) => (/^-?\d+$/.test(s) ? Number(s) : undefined));
  return (root) => {
    let cur: unknown = root;
    for (let i = 0; i < keys.length; i++) {
      if (cur === null || typeof cur !== 'object') return undefined;
      if (Array.isArray(cur)) {
        const index = indexes[i];
        if (index === undefined) return undefined;
        cur = cur[index < 0 ? cur.length + index : index];
      } else {
        const key = keys[i]!;
        // own keys only: a path must never reach Object.prototype
        if (!Object.hasOwn(cur, key)) return undefined;
        cur = (cur as Record<string, unknown>)[key];
      }
    }
    return cur;
  };
}

type Message = { role?: unknown; content?: unknown };

/**
 * The elements of `messages`, as sent: any JSON value. The chat route refuses a body whose
 * messages are not objects before routing (`invalidMessages`), but these readers also run on the
 * offline cases and after the response (the log line's prompt hash), so they are total over any
 * JSON shape: an element that is not an object is no message and is skipped (issue 12, defect 1).
 */
function messagesOf(body: Readonly<JsonObject>): readonly unknown[] {
  return Array.isArray(body.messages) ? body.messages : [];
}

function asMessage(value: unknown): Message | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Message) : undefined;
}

/** The text of a message's content: a string, or the `text` parts of a content array. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
      text += (text ? '\n' : '') + (part as { text: string }).text;
    }
  }
  return text;
}

/**
 * Prompt tokens, estimated without a tokenizer: about 4 characters per token for English text
 * and code with GPT-style BPE vocabularies, plus 4 tokens of framing per message, plus tool schemas.
 * Good to route on (short / long / very long), not to bill on; context checks use the conservative
 * estimate of src/catalog/estimate.ts (`request.context_needed`).
 */
export function estimatePromptTokens(body: Readonly<JsonObject>): number {
  let chars = 0;
  const messages = messagesOf(body);
  for (const m of messages) chars += contentText(asMessage(m)?.content).length;
  if (Array.isArray(body.tools)) chars += JSON.stringify(body.tools).length;
  return Math.ceil(chars / 4) + 4 * messages.length;
}

/** A message has an image part (`request.has_images`; `choose` then needs a model that takes images). */
export function hasImages(body: Readonly<JsonObject>): boolean {
  for (const m of messagesOf(body)) {
    const content = asMessage(m)?.content;
    if (Array.isArray(content) && content.some(isImagePart)) return true;
  }
  return false;
}

/** The request offers tools or functions (`request.has_tools`). */
export function hasTools(body: Readonly<JsonObject>): boolean {
  return (Array.isArray(body.tools) && body.tools.length > 0) || (Array.isArray(body.functions) && body.functions.length > 0);
}

/** `response_format` asks for JSON, an object or a schema (`request.json_mode`). */
export function asksForJson(body: Readonly<JsonObject>): boolean {
  const rf = body.response_format;
  const type = rf && typeof rf === 'object' ? (rf as { type?: unknown }).type : undefined;
  return type === 'json_object' || type === 'json_schema';
}

/** The text of the last user message, or undefined when there is none. */
export function lastUserText(body: Readonly<JsonObject>): string | undefined {
  const messages = messagesOf(body);
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = asMessage(messages[i]);
    if (message?.role === 'user') return contentText(message.content);
  }
  return undefined;
}

/**
 * `classify.*`: one verdict per request, computed the first time a rule reads any of them (by the
 * local model, unless the asynchronous step already resolved it with the LLM or embedding method).
 */
const CLASSIFY_FIELDS: readonly (readonly [string, string, (verdict: Classification) => unknown])[] = [
  ['classify.complexity', 'the tier the request needs: simple, medium, complex or frontier (docs/classifiers.md); computed only when a rule uses it',
    (v) => v.complexity],
  ['classify.task', 'what the request asks for: chat, simple_qa, classification, translation, summarization, extraction, creative_writing, '
    + 'code_generation, code_review, analysis, math or deep_reasoning; computed only when a rule uses it', (v) => v.task],
  ['classify.confidence', 'how sure the classifier is of classify.complexity, 0 to 1', (v) => v.confidence],
];

/**
 * The spend fields (issue 16): read from the account store by the asynchronous step before the
 * decision, only when the rules read one; missing when nothing applies (no client key, no budget,
 * no team, no end user).
 */
const BUDGET_FIELDS: readonly (readonly [string, string, keyof BudgetFields])[] = [
  ['budget.remaining_usd', 'USD left of the tightest budget that applies (the key\'s, its team\'s, the end user\'s; daily and monthly), '
    + 'reservations of requests in flight counted; missing when none applies', 'remainingUsd'],
  ['budget.spent_today_usd', 'what the key spent today (BUDGET_TIMEZONE), USD', 'keySpentTodayUsd'],
  ['budget.spent_month_usd', 'what the key spent this month, USD', 'keySpentMonthUsd'],
  ['team.spent_today_usd', 'what the key\'s team spent today, USD; missing without a team', 'teamSpentTodayUsd'],
  ['team.spent_month_usd', 'what the key\'s team spent this month, USD', 'teamSpentMonthUsd'],
  ['user.spent_today_usd', 'what the end user (USER_SOURCE) spent today under this key, USD; missing without an end user', 'userSpentTodayUsd'],
  ['user.spent_month_usd', 'what the end user spent this month under this key, USD', 'userSpentMonthUsd'],
];

/** Each spend field's slot in BudgetFields (a rule case's `spend:` names them as the rules do). */
export const BUDGET_FIELD_SLOTS: ReadonlyMap<string, keyof BudgetFields> = new Map(BUDGET_FIELDS.map(([name, , slot]) => [name, slot]));

/** Whether a field name is a spend field (the rules that read one need the caller's balances). */
export function isBudgetField(name: string): boolean {
  return BUDGET_FIELD_SLOTS.has(name);
}

/** Whether a field name is a classifier verdict (the rules that read one need a classification). */
export function isClassifyField(name: string): boolean {
  return name.startsWith('classify.');
}

function exact(name: string, description: string, getter: FieldGetter): FieldDefinition {
  return { match: 'exact', name, description, compile: () => getter };
}

/** The built-in fields. */
export function builtinFields(): FieldRegistry {
  const registry = new FieldRegistry();
  registry
    .register({
      match: 'prefix', name: 'header.', description: 'a request header, by case-insensitive name (first value when repeated)',
      compile(rest) {
        if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(rest)) return `bad header name "${rest}"`;
        const name = rest.toLowerCase();
        return (input) => {
          const value = input.headers[name];
          const first = Array.isArray(value) ? value[0] : value;
          return first === undefined ? undefined : headerText(first);
        };
      },
    })
    .register({
      match: 'prefix', name: 'body.', description: 'any value in the JSON body, by dot path; numeric segments index arrays (-1 is the last)',
      compile(rest) {
        const get = compilePath(rest);
        if (typeof get === 'string') return get;
        return (input) => get(input.body);
      },
    })
    .register({
      match: 'prefix', name: 'key.', description: 'the caller\'s key (KEYS_FILE): `key.name`, `key.tier`, `key.team`, or a custom field of its `meta` (`key.department`); missing without client keys or when the key has none',
      compile(rest) {
        if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(rest)) return `bad key field "${rest}" (key.name, key.tier, key.team or key.<meta field>)`;
        if (rest === 'name') return (input) => input.caller?.name;
        if (rest === 'tier') return (input) => input.caller?.tier;
        if (rest === 'team') return (input) => input.caller?.team?.name;
        return (input) => {
          const meta = input.caller?.meta;
          // Own fields only: `key.constructor` is no field of any key.
          return meta !== undefined && Object.hasOwn(meta, rest) ? meta[rest] : undefined;
        };
      },
    })
    .register(exact('request.api', 'the request\'s shape: chat (chat completions), responses (the Responses API) or messages (Anthropic\'s Messages API)', (input) => input.api))
    .register(exact('model', 'the model the client asked for', (input) => (typeof input.body.model === 'string' ? input.body.model : undefined)))
    .register(exact('request.stream', 'true when the client asked for a stream', (input) => input.view.stream === true))
    .register(exact('request.tokens', 'estimated prompt tokens (about 4 characters a token; computed only when a rule uses it)',
      derived('request.tokens', (input) => estimatePromptTokens(input.view))))
    .register(exact('request.context_needed', 'the context window the request needs: the conservative prompt estimate + max_tokens '
      + `(or max_completion_tokens, else ${DEFAULT_COMPLETION_TOKENS}); computed only when a rule uses it`,
    derived('request.context_needed', (input) => contextNeeded(input.view))))
    .register(exact('request.max_tokens', 'the max_tokens (or max_completion_tokens) the client asked for', (input) => {
      const v = input.view.max_tokens ?? input.view.max_completion_tokens;
      return typeof v === 'number' ? v : undefined;
    }))
    .register(exact('request.messages', 'the number of messages', (input) => messagesOf(input.view).length))
    .register(exact('request.has_tools', 'true when the request offers tools or functions', (input) => hasTools(input.view)))
    .register(exact('request.has_images', 'true when a message has an image part', derived('request.has_images', (input) => hasImages(input.view))))
    .register(exact('request.json_mode', 'true when response_format asks for JSON (json_object or json_schema)', (input) => asksForJson(input.view)))
    .register(exact('request.text', 'the text of the last user message', derived('request.text', (input) => lastUserText(input.view))))
    .register(exact('request.cost_estimate_usd', 'what the request would cost on the requested model, from the catalog: conservative prompt estimate, '
      + `max_tokens (else ${DEFAULT_COMPLETION_TOKENS}) of completion, the request and image prices; null without a catalog or for an unknown model`,
    derived('request.cost_estimate_usd', (input) => {
      const model = requestedModel(input);
      return model === undefined ? undefined : requestEstimateUsd(model, input.view, input.now);
    })))
    .register(exact('model.known', 'true when the catalog lists the requested model (by id or canonical slug); null without a catalog', (input) => {
      if (input.catalog === undefined) return undefined;
      return requestedModel(input) !== undefined;
    }))
    .register(exact('model.context_length', 'the requested model\'s context window in tokens, from the catalog', (input) => requestedModel(input)?.contextLength))
    .register(exact('model.price.prompt', 'the requested model\'s prompt price, USD per million tokens, from the catalog', (input) => {
      const model = requestedModel(input);
      return model === undefined ? undefined : perMillion(model, 'prompt');
    }))
    .register(exact('model.price.completion', 'the requested model\'s completion price, USD per million tokens, from the catalog', (input) => {
      const model = requestedModel(input);
      return model === undefined ? undefined : perMillion(model, 'completion');
    }));
  for (const capability of CAPABILITIES) {
    registry.register(exact(`model.supports.${capability}`, `true when the catalog says the requested model supports ${capability}`, (input) => {
      const model = requestedModel(input);
      return model === undefined ? undefined : supports(model, capability);
    }));
  }
  for (const [name, description, read] of CLASSIFY_FIELDS) {
    registry.register({
      match: 'exact', name, description,
      compile(_rest, options) {
        const config = options.classifier;
        if (config === undefined) return 'classify fields need a classifier: this compilation has none (compile through src/rules-file/loader.ts)';
        // Loaded now, at rules load: the first request must not pay for reading the model.
        const local = config.local();
        return (input) => read(input.verdict ??= input.resolved?.classification ?? local.classify(classifierInput(messagesOf(input.view))));
      },
    });
  }
  for (const [name, description, slot] of BUDGET_FIELDS) {
    registry.register(exact(name, description, (input) => input.resolved?.budget?.[slot]));
  }
  registry
    .register({
      match: 'exact', name: 'time.hour', description: 'hour of the day, 0-23, in the rules timezone',
      compile(_rest, options) {
        const format = new Intl.DateTimeFormat('en-US', { timeZone: options.timezone, hour: 'numeric', hourCycle: 'h23' });
        return derived('time.hour', (input) => Number(format.format(input.now)));
      },
    })
    .register({
      match: 'exact', name: 'time.weekday', description: 'day of the week (monday ... sunday), in the rules timezone',
      compile(_rest, options) {
        const format = new Intl.DateTimeFormat('en-US', { timeZone: options.timezone, weekday: 'long' });
        return derived('time.weekday', (input) => format.format(input.now).toLowerCase());
      },
    });
  return registry;
}
