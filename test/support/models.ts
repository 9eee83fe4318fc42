/**
 * Every model id the tests invent. The fake OpenRouter refuses models outside its catalog with
 * OpenRouter's 400, as the real one does; the harness serves these too, so that a test's made-up
 * model reaches the behaviour under test. Real OpenRouter ids (src/dev/fake-models.ts) need not be
 * listed. An id ending in `*` is a prefix. `nobody/*` stays unknown: tests of the refusal use it.
 */
export const TEST_MODELS: readonly string[] = [
  // Routes, tiers and fallbacks of test rules.
  'a/primary', 'a/x', 'b/second', 'b/y', 'c/third', 'allow/listed', 'route/fallback', 'tier/model', 'tier/fallback',
  'm', 'm/a', 'm/auto', 'm/b', 'm/c', 'm/fast', 'm/free', 'm/later', 'm/long', 'm/pro', 'm/short',
  'model/a', 'model/b', 'model/c', 'model/fixed', 'my/model', 'openai/other-model',
  'p/one', 'p/two', 'p/three', 'partial/backup', 'partial/full', 'partial/second',
  'raw/my-model', 'raw/x', 'rules/never', 'rules/v1-a', 'rules/v1-b', 'rules/v2-a',
  'real/served-model', 's/1', 's/2', 's/3', 's/4', 's/5', 'served/a', 'served/b', 'x/main', 'x/named', 'x/override', 'x/y',
  // Client-chosen names: metric label bounds, header encoding.
  'invented/*', 'my model', 'gpté', 'evil\r\nx-injected: 1',
];
