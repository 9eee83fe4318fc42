import { MAX_CLIENT_TEXT_CHARS } from '../bounded-text.js';

/**
 * Bounded label values. A model name keeps its own label value only when the rules, the tiers
 * or the configured allow-list name it, or when a successful upstream response reported it as
 * the model that served (up to `maxServed` such names); anything else is `other`. A client
 * chooses none of these: a name it makes up, in a request that is refused or fails, never takes
 * a slot, so junk cannot use up the slots before real models arrive. 1,000 invented model names
 * make one series, not 1,000, and the scrape never grows without bound (the memory blow-ups of
 * gateways that label by raw model name).
 */

export const OTHER = 'other';

/**
 * Whether the model catalog in force lists a model id; undefined while no catalog is loaded.
 */
export type CatalogLookup = (model: string) => boolean | undefined;

export class ModelLabels {
  private readonly known = new Set<string>();
  private readonly servedSlots = new Set<string>();
  private readonly maxServed: number;
  private readonly inCatalog: CatalogLookup;

  constructor(allowList: readonly string[], maxServed: number, inCatalog: CatalogLookup = () => undefined) {
    for (const m of allowList) this.known.add(m);
    this.maxServed = maxServed;
    this.inCatalog = inCatalog;
  }

  /**
   * Adds the model names of a rules file. Names of earlier files stay: their series exist
   * already, and a reload must not turn the same model into `other` mid-dashboard.
   */
  addKnown(models: Iterable<string>): void {
    for (const m of models) this.known.add(m);
  }

  /** A model the client asked for: known, or `other`. */
  requested(model: string | undefined): string {
    if (model === undefined) return 'none';
    return this.known.has(model) ? model : OTHER;
  }

  /**
   * A model routed to, attempted or reported: known, or already served (see `served`), or
   * `other`. Never takes a slot: a name seen here may come from the client.
   */
  model(model: string | undefined): string {
    if (model === undefined) return 'unknown';
    return this.known.has(model) || this.servedSlots.has(model) ? model : OTHER;
  }

  /**
   * The model a successful (2xx) upstream response reported as serving it: known, or one of the
   * first `maxServed` such names (at most MAX_CLIENT_TEXT_CHARS long), or `other`. OpenRouter
   * may serve a fallback or a dated variant the rules never name; only its own answer vouches
   * for a name, and, once a model catalog is loaded, only a name the catalog lists takes a slot
   * (an upstream that echoes whatever it was sent cannot fill them).
   */
  served(model: string): string {
    if (this.known.has(model) || this.servedSlots.has(model)) return model;
    if (this.servedSlots.size < this.maxServed && model.length <= MAX_CLIENT_TEXT_CHARS && this.inCatalog(model) !== false) {
      this.servedSlots.add(model);
      return model;
    }
    return OTHER;
  }
}
