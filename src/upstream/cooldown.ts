import { createHash } from 'node:crypto';
import { clipText } from '../bounded-text.js';

/**
 * Circuit breaker per model and credential. A model whose upstream attempts failed `failures`
 * times within `windowMs` is skipped for `durationMs` (while another model of the route can
 * serve); when the cooldown is over, one request probes it: a success closes the breaker, a
 * failure starts another cooldown. Failures are the retryable ones (429, 5xx, no answer); a 4xx
 * caused by the request says nothing about the model.
 *
 * What failed decides who is skipped (`FailureScope`): a 429 is the rate limit of the key that
 * was sent, so it cools the model for that credential only; in pass-through mode one tenant's
 * exhausted key must not send every other tenant to the fallback. A 5xx, a timeout or a failed
 * connection says the model (or the upstream) is failing whoever asks: it cools the model for
 * every credential. Credentials are known by a digest of the Authorization header sent upstream,
 * never by the key itself.
 *
 * Bounded (`maxEntries`): entries are kept in the order of their last failure; entries whose
 * failure window and cooldown have both ended are dropped, and past the cap the least recently
 * failed entry is evicted, so random failing model names cannot grow the map (issue 12, defect 4).
 */

export interface CooldownOptions {
  /** Failures within the window that start a cooldown; 0 disables the breaker. */
  readonly failures: number;
  readonly windowMs: number;
  readonly durationMs: number;
  /** Entries (model, or model and credential) kept at most; the least recently failed go first. */
  readonly maxEntries: number;
}

/** `upstream`: the model fails for everyone (5xx, timeout, no answer); `credential`: for the key sent (429). */
export type FailureScope = 'upstream' | 'credential';

interface BreakerState {
  /** The model, clipped, as explain, the log and the metrics show it. */
  readonly model: string;
  readonly scope: FailureScope;
  /** Times of recent failures, oldest first (at most `failures` kept). */
  failures: number[];
  /** Time of the last failure: entries are kept in this order, and expire from it. */
  lastFailureAt: number;
  /** End of the current cooldown; 0 when not cooling down. */
  coolingUntil: number;
  /** The lease probing the model after its cooldown ended; undefined when none is in flight. */
  probe: CooldownLease | undefined;
}

/** A model id longer than this is keyed by its digest: a key must not hold a 20 MB client string. */
const MAX_KEY_MODEL_CHARS = 256;

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

function modelKey(model: string): string {
  return model.length <= MAX_KEY_MODEL_CHARS ? model : `#${digest(model)}`;
}

/**
 * One attempt's hold on the breaker: it records the attempt's outcome, and when the attempt is the
 * probe of a model whose cooldown ended, it holds the probe until `release` (or an outcome). The
 * proxy releases it in `finally`, so a client that leaves before the outcome is known (before the
 * headers, during the first-token wait or a retry wait) frees the probe for the next request
 * instead of leaving the model "cooling" forever (issue 12, defect 6).
 */
export class CooldownLease {
  /** Entries whose probe this lease took; allocated only for a probe, which few attempts are. */
  private probes: BreakerState[] | undefined;

  constructor(private readonly breaker: ModelCooldowns, readonly model: string, readonly credential: string) {}

  /** Called by the breaker when this lease takes the probe of `state`. */
  hold(state: BreakerState): void {
    state.probe = this;
    (this.probes ??= []).push(state);
  }

  /** Whether this attempt is the probe of its model (for either scope). */
  get probing(): boolean {
    return this.probes?.some((s) => s.probe === this) ?? false;
  }

  /** The model answered: its breaker closes, for every credential and this one. */
  success(): void {
    this.breaker.recordSuccess(this.model, this.credential);
    this.release();
  }

  failure(scope: FailureScope, now = Date.now()): void {
    this.breaker.recordFailure(this.model, this.credential, scope, now);
    this.release();
  }

  /** Frees the probes still held, outcome unknown: the next request probes again. Idempotent. */
  release(): void {
    if (this.probes === undefined) return;
    for (const state of this.probes) if (state.probe === this) state.probe = undefined;
    this.probes = undefined;
  }
}

export class ModelCooldowns {
  private readonly options: CooldownOptions;
  /** Keyed `u\0<model>` (upstream-wide) or `c\0<credential digest>\0<model>`; in order of last failure. */
  private readonly states = new Map<string, BreakerState>();
  private readonly onCooldown: (model: string, scope: FailureScope) => void;
  /** The last Authorization digested: in server-key mode every request sends the same one. */
  private lastAuthorization: string | undefined;
  private lastCredential = '-';

  constructor(options: CooldownOptions, onCooldown: (model: string, scope: FailureScope) => void = () => {}) {
    this.options = options;
    this.onCooldown = onCooldown;
  }

  get enabled(): boolean {
    return this.options.failures > 0;
  }

  /** Entries held now (tests, and the bound's proof). */
  get size(): number {
    return this.states.size;
  }

  /** The credential of an upstream request, from the Authorization header it sends: a digest, never the key. */
  credentialOf(authorization: string | undefined): string {
    if (authorization === undefined) return '-';
    if (authorization !== this.lastAuthorization) {
      this.lastCredential = digest(authorization);
      this.lastAuthorization = authorization;
    }
    return this.lastCredential;
  }

  /**
   * The lease of an attempt that tries `model` with `credential`. After a cooldown the first
   * caller's lease takes the probe; others see the model cooling until the probe's outcome is
   * recorded or its lease released.
   */
  lease(model: string, credential: string, now = Date.now()): CooldownLease {
    return this.probe(model, credential, now) ?? new CooldownLease(this, model, credential);
  }

  /**
   * The lease of the probe of `model` for `credential` when its cooldown has ended and nobody
   * probes it yet; undefined otherwise (no lease allocated: most attempts, and every attempt while
   * the breaker holds no state). The caller records outcomes with recordSuccess/recordFailure and
   * releases the lease once the attempt is over (src/upstream/attempts.ts).
   */
  probe(model: string, credential: string, now = Date.now()): CooldownLease | undefined {
    if (this.states.size === 0) return undefined;
    let lease: CooldownLease | undefined;
    for (const state of [this.states.get(upstreamKey(model)), this.states.get(credentialKey(model, credential))]) {
      if (state !== undefined && state.coolingUntil !== 0 && now >= state.coolingUntil && state.probe === undefined) {
        (lease ??= new CooldownLease(this, model, credential)).hold(state);
      }
    }
    return lease;
  }

  /** Whether `model` is cooling down for `credential` (or waiting for its probe), without taking the probe. */
  isCooling(model: string, credential: string, now = Date.now()): boolean {
    if (this.states.size === 0) return false;
    return isCooling(this.states.get(upstreamKey(model)), now) || isCooling(this.states.get(credentialKey(model, credential)), now);
  }

  recordSuccess(model: string, credential: string): void {
    if (this.states.size === 0) return;
    this.states.delete(upstreamKey(model));
    this.states.delete(credentialKey(model, credential));
  }

  recordFailure(model: string, credential: string, scope: FailureScope, now = Date.now()): void {
    if (!this.enabled) return;
    const key = scope === 'upstream' ? upstreamKey(model) : credentialKey(model, credential);
    let state = this.states.get(key);
    if (state === undefined) {
      state = { model: clipText(model), scope, failures: [], lastFailureAt: now, coolingUntil: 0, probe: undefined };
    } else {
      // Kept in the order of the last failure: the front is what expires or is evicted first.
      this.states.delete(key);
    }
    this.states.set(key, state);
    state.lastFailureAt = now;
    if (state.probe !== undefined) {
      // The probe failed (or an attempt made while every model was cooling): cool down again at once.
      state.probe = undefined;
      this.start(state, now);
    } else {
      const since = now - this.options.windowMs;
      state.failures = state.failures.filter((t) => t > since);
      state.failures.push(now);
      if (state.failures.length >= this.options.failures && state.coolingUntil <= now) this.start(state, now);
    }
    this.prune(now);
  }

  /**
   * Models cooling down now, with the end of their cooldown (explain output, gauge): for
   * `credential`, those cooling for everyone and for it; without one, every cooling model.
   */
  cooling(now = Date.now(), credential?: string): Record<string, number> {
    const out: Record<string, number> = {};
    const prefix = credential === undefined ? undefined : `c\0${credential}\0`;
    for (const [key, state] of this.states) {
      if (!isCooling(state, now)) continue;
      if (prefix !== undefined && state.scope === 'credential' && !key.startsWith(prefix)) continue;
      out[state.model] = Math.max(out[state.model] ?? 0, state.coolingUntil);
    }
    return out;
  }

  private start(state: BreakerState, now: number): void {
    state.failures = [];
    state.coolingUntil = now + this.options.durationMs;
    this.onCooldown(state.model, state.scope);
  }

  /**
   * Drops expired entries from the front (least recently failed first), then evicts the front
   * past the cap. Amortised O(1): each entry is dropped once. An evicted entry that was still
   * cooling lets its model back early, which is what the proxy did before it had a breaker.
   */
  private prune(now: number): void {
    const keep = Math.max(this.options.windowMs, this.options.durationMs);
    for (const [key, state] of this.states) {
      const expired = state.probe === undefined && now >= state.lastFailureAt + keep;
      if (!expired && this.states.size <= this.options.maxEntries) break;
      this.states.delete(key);
    }
  }
}

function upstreamKey(model: string): string {
  return `u\0${modelKey(model)}`;
}

function credentialKey(model: string, credential: string): string {
  return `c\0${credential}\0${modelKey(model)}`;
}

function isCooling(state: BreakerState | undefined, now: number): boolean {
  return state !== undefined && state.coolingUntil !== 0 && (now < state.coolingUntil || state.probe !== undefined);
}

/**
 * The models of a route's next attempt: the first is the one tried, all of them go to OpenRouter
 * as its fallback list. `failed` is the model of the attempt that just failed (undefined before
 * the first); `credential` the digest of the key the attempt sends (`credentialOf`). Pure: reads
 * the breaker at `now`, takes no probe (explain shows the choice with it).
 *
 * While any model of the route is not cooling, no cooling model is tried or listed:
 * 1. the models after `failed` in the route that are not cooling (all of them on the first attempt);
 * 2. else `failed` alone again, when it is not cooling: it is the last model that can serve, so
 *    this is a genuine retry of the same model (after a backoff), not a fallback;
 * 3. else (`failed` has just started cooling) the models of the route that are not cooling, an
 *    earlier one that failed in this request included: it may still answer, a cooling one should not be asked.
 * When every model of the route is cooling, the route as it is from the model after `failed` on
 * (`failed` again when it is the last): an answer beats a refusal.
 */
export function attemptModels(
  route: readonly string[],
  failed: string | undefined,
  cooldowns: Pick<ModelCooldowns, 'enabled' | 'isCooling'>,
  credential: string,
  now: number,
): readonly string[] {
  // Past the failed model (0 before the first attempt, or if it is not in the route).
  const start = failed === undefined ? 0 : route.indexOf(failed) + 1;
  if (!cooldowns.enabled) return route.slice(Math.min(start, route.length - 1));
  const serving = route.filter((m) => !cooldowns.isCooling(m, credential, now));
  if (serving.length === 0) return route.slice(Math.min(start, route.length - 1));
  const after: string[] = [];
  for (let i = start; i < route.length; i++) if (serving.includes(route[i]!)) after.push(route[i]!);
  if (after.length > 0) return after;
  if (failed !== undefined && serving.includes(failed)) return [failed];
  return serving;
}
