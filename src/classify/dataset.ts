import { createHash } from 'node:crypto';
import { FileReadError, readRegularFileSync } from '../bounded-file.js';
import { COMPLEXITY_LABELS, isComplexity, isTask, TASK_LABELS, type Complexity, type Task } from './labels.js';
import { classifierInput, type ClassifierInput } from './window.js';

/**
 * Labelled prompt sets (JSON Lines, datasets/classifier/LABELLING.md): what `signalbox classifier
 * train` learns from and `eval` measures on. One line per prompt:
 * `{"text": "..."}` or `{"messages": [...]}`, with `complexity` and `task`; `id`, `lang` and `tags`
 * are optional and used for reports.
 */

/** Largest set read: 64 MiB is some 100,000 prompts with pasted documents; a set is read whole into memory. */
export const MAX_SET_BYTES = 64 * 1024 * 1024;

export interface LabelledPrompt {
  readonly id: string;
  readonly lang: string | undefined;
  readonly tags: readonly string[];
  readonly complexity: Complexity;
  readonly task: Task;
  readonly input: ClassifierInput;
}

export interface LabelledSet {
  readonly file: string;
  readonly prompts: readonly LabelledPrompt[];
  /** SHA-256 of the file, recorded in a model trained on it. */
  readonly sha256: string;
  /** The file's bytes (the embedding method keys its vectors' cache by them). */
  readonly bytes: Buffer;
}

export class DatasetError extends Error {
  readonly problems: readonly string[];
  constructor(file: string, problems: readonly string[]) {
    super(`invalid labelled set ${file}:\n${problems.slice(0, 20).map((p) => `  - ${p}`).join('\n')}${problems.length > 20 ? `\n  ... and ${problems.length - 20} more` : ''}`);
    this.name = 'DatasetError';
    this.problems = problems;
  }
}

const MESSAGE_ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

/** Parses one line; a problem message (without position) when it is not a labelled prompt. */
function parseLine(line: string, fallbackId: string): LabelledPrompt | string {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch (err) {
    return `not JSON (${(err as Error).message})`;
  }
  if (row === null || typeof row !== 'object' || Array.isArray(row)) return 'expected a JSON object';
  const r = row as Record<string, unknown>;
  if (!isComplexity(r.complexity)) return `complexity: expected one of ${COMPLEXITY_LABELS.join(', ')}`;
  if (!isTask(r.task)) return `task: expected one of ${TASK_LABELS.join(', ')}`;
  let input: ClassifierInput;
  if (typeof r.text === 'string' && r.messages === undefined) {
    if (r.text.trim() === '') return 'text: empty';
    input = classifierInput([{ role: 'user', content: r.text }]);
  } else if (Array.isArray(r.messages) && r.text === undefined) {
    const bad = r.messages.findIndex((m) => m === null || typeof m !== 'object' || !MESSAGE_ROLES.has((m as { role?: unknown }).role as string));
    if (bad !== -1) return `messages[${bad}]: expected an object with a role (${[...MESSAGE_ROLES].join(', ')})`;
    if (!r.messages.some((m) => (m as { role: string }).role === 'user')) return 'messages: no user message';
    input = classifierInput(r.messages);
  } else {
    return 'expected exactly one of "text" (a string) or "messages" (a chat messages array)';
  }
  if (r.id !== undefined && typeof r.id !== 'string') return 'id: expected a string';
  if (r.lang !== undefined && typeof r.lang !== 'string') return 'lang: expected a string';
  if (r.tags !== undefined && !(Array.isArray(r.tags) && r.tags.every((t) => typeof t === 'string'))) return 'tags: expected a list of strings';
  return {
    id: (r.id as string | undefined) ?? fallbackId,
    lang: r.lang as string | undefined,
    tags: (r.tags as string[] | undefined) ?? [],
    complexity: r.complexity,
    task: r.task,
    input,
  };
}

/** Reads a labelled set of at most `maxBytes`; every bad line is reported as `file:line: field: what is wrong`. */
export function readLabelledSet(file: string, maxBytes = MAX_SET_BYTES): LabelledSet {
  let bytes: Buffer;
  try {
    bytes = readRegularFileSync(file, 'labelled set', maxBytes);
  } catch (err) {
    if (err instanceof FileReadError) throw new DatasetError(file, [err.message]);
    throw err;
  }
  const text = bytes.toString('utf8');
  const prompts: LabelledPrompt[] = [];
  const problems: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const parsed = parseLine(line, `line-${i + 1}`);
    if (typeof parsed === 'string') problems.push(`${file}:${i + 1}: ${parsed}`);
    else prompts.push(parsed);
  });
  if (problems.length > 0) throw new DatasetError(file, problems);
  if (prompts.length === 0) throw new DatasetError(file, [`${file}: no labelled prompts`]);
  return { file, prompts, sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
}
