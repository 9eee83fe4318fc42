import type { Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { cannotRead as readFailure, checkStat as statFailure, FileReadError, OPEN_FLAGS, readRegularFileSync, tooLarge as sizeFailure } from '../bounded-file.js';
import { compileClassifier } from '../classify/config.js';
import { compileRules, RulesError, type CompileOptions } from '../rules/compile.js';
import type { RuleSet } from '../rules/ruleset.js';

/**
 * Largest rules (or cases) file read: 1 MiB holds thousands of rules, and a 10 MB file froze the
 * process for 8 s in the YAML parser with 1 GB of RSS during a hot reload.
 */
export const MAX_RULES_FILE_BYTES = 1024 * 1024;


/**
 * A rules file's text compiled as the server compiles it: with the classifier block's files (a
 * user-trained model) read and checked, which the pure engine leaves to its caller.
 */
export function compileRulesText(text: string, file: string, options: CompileOptions = {}): RuleSet {
  return compileRules(text, file, { classifier: compileClassifier, ...options });
}

/** Reads and compiles a rules file; every failure, unreadable file included, is a RulesError. */
export function loadRulesFile(file: string, options: CompileOptions = {}): RuleSet {
  return compileRulesText(readBoundedTextSync(file, 'rules file'), file, options);
}

/** loadRulesFile without blocking the event loop on the read (hot reloads, while requests run). */
export async function loadRulesFileAsync(file: string, options: CompileOptions = {}): Promise<RuleSet> {
  return compileRulesText(await readBoundedText(file, 'rules file'), file, options);
}

/** A regular file of at most MAX_RULES_FILE_BYTES as UTF-8 text; anything else is a RulesError. */
export function readBoundedTextSync(file: string, what: string): string {
  try {
    return readRegularFileSync(file, what, MAX_RULES_FILE_BYTES).toString('utf8');
  } catch (err) {
    throw err instanceof FileReadError ? new RulesError(file, [err.message]) : err;
  }
}

/** readBoundedTextSync through fs.promises. */
export async function readBoundedText(file: string, what: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, OPEN_FLAGS);
  } catch (err) {
    throw cannotRead(file, what, err);
  }
  try {
    checkStat(file, what, await handle.stat());
    const buffer = Buffer.allocUnsafe(MAX_RULES_FILE_BYTES + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n) n = (await handle.read(buffer, length, buffer.length - length, null)).bytesRead;
    return decode(file, what, buffer, length);
  } catch (err) {
    throw err instanceof RulesError ? err : cannotRead(file, what, err);
  } finally {
    await handle.close();
  }
}

function checkStat(file: string, what: string, stat: Stats): void {
  try {
    statFailure(file, what, stat, MAX_RULES_FILE_BYTES);
  } catch (err) {
    throw err instanceof FileReadError ? new RulesError(file, [err.message]) : err;
  }
}

/** The size was checked on fstat; a file that grew since is caught by reading one byte past the limit. */
function decode(file: string, what: string, buffer: Buffer, length: number): string {
  if (length > MAX_RULES_FILE_BYTES) throw tooLarge(file, what);
  return buffer.toString('utf8', 0, length);
}

function tooLarge(file: string, what: string): RulesError {
  return new RulesError(file, [sizeFailure(file, what, MAX_RULES_FILE_BYTES).message]);
}

function cannotRead(file: string, what: string, err: unknown): RulesError {
  return new RulesError(file, [readFailure(file, what, err).message]);
}
