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
