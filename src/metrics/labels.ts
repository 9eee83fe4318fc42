/**
 * Bounded label values. A label value a client can choose (the model it asks for) is kept only
 * when the rules, the tiers or the configured allow-list name it; anything else is `other`. So
 * 1,000 invented model names make one series, not 1,000, and a client can never grow the
 * scrape without bound (the memory blow-ups of gateways that label by raw model name).
 */

export const OTHER = 'other';

export class ModelLabels {
  private readonly known = new Set<string>();
  private readonly served = new Set<string>();
  private readonly maxServed: number;

  constructor(allowList: readonly string[], maxServed: number) {
    for (const m of allowList) this.known.add(m);
    this.maxServed = maxServed;
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
   * A model the upstream reported or the proxy routed to: known, or one of the first
   * `maxServed` others seen, or `other`.
   */
  model(model: string | undefined): string {
    if (model === undefined) return 'unknown';
    if (this.known.has(model) || this.served.has(model)) return model;
    if (this.served.size < this.maxServed) {
      this.served.add(model);
      return model;
    }
    return OTHER;
  }
}
