import { fileURLToPath } from 'node:url';
import { readLabelledSet, type LabelledPrompt } from '../../src/classify/dataset.js';
import type { Complexity, Task } from '../../src/classify/labels.js';
import type { LocalClassifier } from '../../src/classify/model.js';
import { DEFAULT_TRAIN_OPTIONS, train } from '../../src/classify/train.js';
import { classifierInput } from '../../src/classify/window.js';

/** The hand-written labelled set of the classifier tests (62 prompts, every label, 7 languages, multi-turn). */
export const FIXTURE_SET = fileURLToPath(new URL('../../../test/fixtures/classifier/set.jsonl', import.meta.url));

/** Small enough to train in a blink, large enough to learn the fixture set. */
export const FIXTURE_BITS = 12;

let model: LocalClassifier | undefined;

/** A model trained on the fixture set, once per test process. */
export function fixtureModel(): LocalClassifier {
  return (model ??= train(readLabelledSet(FIXTURE_SET).prompts, { ...DEFAULT_TRAIN_OPTIONS, bits: FIXTURE_BITS }));
}

/** A labelled prompt built in code, for evaluations whose answer the test knows. */
export function prompt(complexity: Complexity, task: Task, messages: unknown[], extra: { lang?: string; tags?: string[] } = {}): LabelledPrompt {
  return { id: `p-${complexity}-${task}`, lang: extra.lang, tags: extra.tags ?? [], complexity, task, input: classifierInput(messages) };
}
