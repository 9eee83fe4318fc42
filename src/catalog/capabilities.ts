import { times, usd, type CatalogModel } from './catalog.js';

/** What a request can need of a model, as rules and `choose` name it. */
export const CAPABILITIES = ['tools', 'vision', 'json_mode', 'reasoning'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/**
 * Whether the catalog says `model` can do `capability`, from OpenRouter's `supported_parameters`
 * and `architecture.input_modalities`:
 * - tools: `tools` is a supported parameter;
 * - vision: `image` is an input modality;
 * - json_mode: `response_format` or `structured_outputs` is supported;
 * - reasoning: `reasoning` or `include_reasoning` is supported.
 */
export function supports(model: CatalogModel, capability: Capability): boolean {
  const params = model.supportedParameters;
  switch (capability) {
    case 'tools':
      return params.includes('tools');
    case 'vision':
      return model.inputModalities.includes('image');
    case 'json_mode':
      return params.includes('response_format') || params.includes('structured_outputs');
    case 'reasoning':
      return params.includes('reasoning') || params.includes('include_reasoning');
  }
}

const MILLION = 1_000_000;

/** A per-token price as USD per million tokens (how people compare prices), or undefined. */
export function perMillion(model: CatalogModel, key: 'prompt' | 'completion'): number | undefined {
  const price = model.pricing[key];
  return price === undefined ? undefined : usd(times(price, MILLION));
}
