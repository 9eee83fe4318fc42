/**
 * Per-model circuit breaker. A model whose upstream attempts failed `failures` times within
 * `windowMs` is skipped for `durationMs` (while another model of the route can serve); when the
 * cooldown is over, one request probes it: a success closes the breaker, a failure starts
 * another cooldown. Failures are the retryable ones (429, 5xx, no answer); a 4xx caused by the
 * request says nothing about the model.
 */

export interface CooldownOptions {
  /** Failures within the window that start a cooldown; 0 disables the breaker. */
  readonly failures: number;
  readonly windowMs: number;
  readonly durationMs: number;
}

interface ModelState {
  /** Times of recent failures, oldest first (at most `failures` kept). */
  failures: number[];
  /** End of the current cooldown; 0 when not cooling down. */
  coolingUntil: number;
  /** A probe request is in flight after a cooldown ended. */
  probing: boolean;
}

export class ModelCooldowns {
  private readonly options: CooldownOptions;
  private readonly states = new Map<string, ModelState>();
  private readonly onCooldown: (model: string) => void;

  constructor(options: CooldownOptions, onCooldown: (model: string) => void = () => {}) {
    this.options = options;
    this.onCooldown = onCooldown;
  }

  get enabled(): boolean {
    return this.options.failures > 0;
  }

  /**
   * Whether `model` may be tried now. After a cooldown the first caller gets true and becomes the
   * probe; others get false until the probe's outcome is recorded.
   */
  tryAcquire(model: string, now = Date.now()): boolean {
    const state = this.states.get(model);
    if (state === undefined || state.coolingUntil === 0) return true;
    if (now < state.coolingUntil || state.probing) return false;
    state.probing = true;
    return true;
  }

  /** Whether `model` is cooling down (or waiting for its probe), without taking the probe. */
  isCooling(model: string, now = Date.now()): boolean {
    const state = this.states.get(model);
    return state !== undefined && state.coolingUntil !== 0 && (now < state.coolingUntil || state.probing);
  }

  success(model: string): void {
    const state = this.states.get(model);
    if (state === undefined) return;
    state.failures = [];
    state.coolingUntil = 0;
    state.probing = false;
  }

  failure(model: string, now = Date.now()): void {
    if (!this.enabled) return;
    let state = this.states.get(model);
    if (state === undefined) {
      state = { failures: [], coolingUntil: 0, probing: false };
      this.states.set(model, state);
    }
    if (state.probing) {
      // The probe failed: cool down again at once.
      state.probing = false;
      this.start(model, state, now);
      return;
    }
    const since = now - this.options.windowMs;
    state.failures = state.failures.filter((t) => t > since);
    state.failures.push(now);
    if (state.failures.length >= this.options.failures && state.coolingUntil <= now) this.start(model, state, now);
  }

  /** Models cooling down now, with the end of their cooldown (explain output, gauge). */
  cooling(now = Date.now()): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [model, state] of this.states) if (state.coolingUntil !== 0 && (now < state.coolingUntil || state.probing)) out[model] = state.coolingUntil;
    return out;
  }

  private start(model: string, state: ModelState, now: number): void {
    state.failures = [];
    state.coolingUntil = now + this.options.durationMs;
    this.onCooldown(model);
  }
}

/**
 * The models of a route's next attempt: the first is the one tried, all of them go to OpenRouter
 * as its fallback list. `failed` is the model of the attempt that just failed (undefined before
 * the first). Pure: reads the breaker at `now`, takes no probe (explain shows the choice with it).
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
  now: number,
): readonly string[] {
  // Past the failed model (0 before the first attempt, or if it is not in the route).
  const start = failed === undefined ? 0 : route.indexOf(failed) + 1;
  if (!cooldowns.enabled) return route.slice(Math.min(start, route.length - 1));
  const serving = route.filter((m) => !cooldowns.isCooling(m, now));
  if (serving.length === 0) return route.slice(Math.min(start, route.length - 1));
  const after: string[] = [];
  for (let i = start; i < route.length; i++) if (serving.includes(route[i]!)) after.push(route[i]!);
  if (after.length > 0) return after;
  if (failed !== undefined && serving.includes(failed)) return [failed];
  return serving;
}
