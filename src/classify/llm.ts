import { createHash } from 'node:crypto';
import type { LlmSettings } from './config.js';
import { isComplexity, isTask, type Classification } from './labels.js';
import { AnswerCache } from './lru.js';
import { answerCost, postJson, type ClassifierOutcome, type RemoteDeps, type RemoteVerdict } from './remote.js';

/**
 * `method: llm`: a cheap model, asked through the same upstream, labels the window of the last
 * user turn (src/classify/window.ts; never the whole body). Temperature 0 and a few tokens: the
 * answer is one line of JSON. Any failure gives the local verdict, and is counted.
 */

type LlmAnswer = Pick<Classification, 'complexity' | 'task' | 'confidence'>;

/** A verdict is under 100 characters: a longer answer (a model that rambles, a hostile upstream) is not one. */
const MAX_ANSWER_CHARS = 4096;
const FENCE = '```';

/**
 * The text inside a fenced answer (```json ... ```), which models give despite being told not to:
 * the fence and its language tag cut off. Without a regex: a lazy one backtracks quadratically on
 * an answer of spaces.
 */
function unfenced(text: string): string {
  if (text.length < 2 * FENCE.length || !text.startsWith(FENCE) || !text.endsWith(FENCE)) return text;
  let start = FENCE.length;
  while (start < text.length - FENCE.length && isAsciiLetter(text.charCodeAt(start))) start++;
  return text.slice(start, text.length - FENCE.length);
}

function isAsciiLetter(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
}

/** The labels in a model's answer text, or undefined when it is not exactly a known verdict. */
export function parseLlmAnswer(content: string): LlmAnswer | undefined {
  if (content.length > MAX_ANSWER_CHARS) return undefined;
  const text = unfenced(content.trim());
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const { complexity, task, confidence } = value as Record<string, unknown>;
  if (!isComplexity(complexity) || !isTask(task)) return undefined;
  if (typeof confidence !== 'number' || !(confidence >= 0 && confidence <= 1)) return undefined;
  return { complexity, task, confidence };
}

/** `choices[0].message.content` of a chat completion, when it is a string. */
function contentOf(json: unknown): string | undefined {
  const choices = (json as { choices?: unknown } | null)?.choices;
  const content = Array.isArray(choices) ? (choices[0] as { message?: { content?: unknown } } | undefined)?.message?.content : undefined;
  return typeof content === 'string' ? content : undefined;
}

/** One call's result before it is shared: the verdict (or the failure) and what it cost. */
interface Asked {
  readonly answer: LlmAnswer | undefined;
  readonly outcome: ClassifierOutcome;
  readonly costUsd: number | undefined;
}

export class LlmClassifier {
  /** Verdicts by SHA-256 of (model, prompt, window): bounded by `cache_entries`. */
  private readonly cache: AnswerCache<Asked>;

  constructor(private readonly settings: LlmSettings, private readonly deps: RemoteDeps) {
    this.cache = new AnswerCache(settings.cacheEntries);
  }

  /** The LLM's verdict on `window`, or `local` (method 'local') when it cannot give one. */
  async classify(window: string, local: Classification, authorization: string | undefined): Promise<RemoteVerdict> {
    const started = this.deps.now?.() ?? performance.now();
    const { model, prompt } = this.settings;
    const key = createHash('sha256').update(model).update('\0').update(prompt).update('\0').update(window).digest('hex');
    // Only an answer is kept: a failure is tried again by the next request.
    const { value: asked, shared } = await this.cache.answer(key, () => this.ask(window, authorization), (a) => a.answer !== undefined);
    const outcome: ClassifierOutcome = shared && asked.answer !== undefined ? 'cached' : asked.outcome;
    const costUsd = shared ? undefined : asked.costUsd;
    const seconds = ((this.deps.now?.() ?? performance.now()) - started) / 1000;
    this.deps.observe?.('llm', outcome, seconds, costUsd);
    const classification: Classification = asked.answer === undefined ? local : { ...asked.answer, method: 'llm' };
    return { classification, outcome, costUsd };
  }

  private async ask(window: string, authorization: string | undefined): Promise<Asked> {
    const { model, prompt, maxTokens, timeoutMs } = this.settings;
    const result = await postJson(this.deps, '/chat/completions', {
      model,
      messages: [{ role: 'system', content: prompt }, { role: 'user', content: window }],
      temperature: 0,
      max_tokens: maxTokens,
      stream: false,
      // OpenRouter reports the call's cost in usage.cost (https://openrouter.ai/docs/use-cases/usage-accounting).
      usage: { include: true },
    }, authorization, timeoutMs);
    if (!result.ok) return { answer: undefined, outcome: result.outcome, costUsd: undefined };
    const costUsd = answerCost(result.json, model, this.deps.catalog());
    const content = contentOf(result.json);
    const answer = content === undefined ? undefined : parseLlmAnswer(content);
    return { answer, outcome: answer === undefined ? 'unparseable' : 'ok', costUsd };
  }
}
