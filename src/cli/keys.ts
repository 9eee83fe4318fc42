/**
 * `signalbox keys hash` and `signalbox keys new`: the keys file holds SHA-256 digests, never keys
 * (docs/keys-and-budgets.md); these make and hash keys so that an operator never has to.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { isSeq, parseDocument } from 'yaml';
import { compileKeys, sha256 } from '../accounts/keys-file.js';
import { ConfigError } from '../errors.js';
import { readBoundedTextSync } from '../rules-file/loader.js';
import type { CliIo } from './commands.js';

export const KEYS_USAGE = `usage:
  signalbox keys hash                               print the SHA-256 of the key read from stdin (one trailing newline ignored)
  signalbox keys new [--name N] [--tier T] [--team T] [--append keys.yaml]
                                                    make a random key (sk-sb-...), print it once and its keys file entry;
                                                    --append adds the entry to the file, validated, atomically`;

/** Longest key `keys hash` reads: far above any real key, and stdin that never ends is not read forever. */
const MAX_KEY_BYTES = 4096;
/** Random bytes in a new key: 256 bits, as many as the SHA-256 kept of it. */
const KEY_BYTES = 32;
export const KEY_PREFIX = 'sk-sb-';

export async function keysCommand(args: readonly string[], io: CliIo, stdin: Readable): Promise<number> {
  const [sub, ...rest] = args;
  try {
    if (sub === 'hash' && rest.length === 0) return await hash(io, stdin);
    if (sub === 'new') return newKey(rest, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) io.err(p);
      return 1;
    }
    throw err;
  }
  io.err(KEYS_USAGE);
  return 2;
}

async function hash(io: CliIo, stdin: Readable): Promise<number> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    length += buffer.length;
    if (length > MAX_KEY_BYTES) {
      io.err(`signalbox keys hash: the key on stdin is longer than ${MAX_KEY_BYTES} bytes`);
      return 1;
    }
    chunks.push(buffer);
  }
  // `echo "$KEY" | signalbox keys hash` and `printf %s "$KEY" | ...` give the same digest.
  const key = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (key === '') {
    io.err('signalbox keys hash: no key on stdin');
    return 1;
  }
  io.out(sha256(key).toString('hex'));
  return 0;
}

function newKey(args: readonly string[], io: CliIo): number {
  const options: Record<string, string> = {};
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i]!;
    const value = args[i + 1];
    if (!['--name', '--tier', '--team', '--append'].includes(flag) || value === undefined || flag.slice(2) in options) {
      io.err(KEYS_USAGE);
      return 2;
    }
    options[flag.slice(2)] = value;
  }
  const key = `${KEY_PREFIX}${randomBytes(KEY_BYTES).toString('base64url')}`;
  const entry: Record<string, string> = {
    name: options.name ?? `key-${randomBytes(4).toString('hex')}`,
    sha256: sha256(key).toString('hex'),
    ...(options.tier !== undefined && { tier: options.tier }),
    ...(options.team !== undefined && { team: options.team }),
  };
  if (options.append !== undefined) append(options.append, entry);
  io.out(`key: ${key}`);
  io.out('(shown once: the keys file keeps only its SHA-256)');
  io.out(options.append !== undefined ? `appended to ${options.append}:` : 'keys file entry:');
  io.out(Object.entries(entry).map(([k, v], i) => `${i === 0 ? '  - ' : '    '}${k}: ${JSON.stringify(v)}`).join('\n'));
  return 0;
}

/**
 * Adds `entry` to the keys file, keeping its comments: the new text is validated as the server
 * would load it (a duplicate name, an unknown team refuse it), then written to a temporary file
 * beside it and renamed over it, so the server's watcher never reads half a file.
 */
function append(file: string, entry: Record<string, string>): void {
  // The server's environment is not this shell's: `env:` keys are taken as set (each its own key).
  const env = new Proxy({}, { get: (_target, name) => `placeholder:${String(name)}` }) as NodeJS.ProcessEnv;
  let exists = true;
  try {
    statSync(file);
  } catch {
    exists = false;
  }
  const text = exists ? readBoundedTextSync(file, 'keys file') : 'version: 1\nkeys: []\n';
  const doc = parseDocument(text);
  const keys = doc.get('keys', true);
  if (doc.errors.length > 0 || !isSeq(keys)) {
    // Loading it says what is wrong, positioned.
    compileKeys(text, file, env);
    throw new ConfigError(`invalid keys file ${file}`, [`${file}: expected a "keys" list to append to`]);
  }
  // A flow sequence (`keys: []`) would stay on one line: block style reads like the rest of the file.
  keys.flow = false;
  keys.add(doc.createNode(entry));
  const next = doc.toString();
  compileKeys(next, file, env);
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(temp, next, { mode: exists ? statSync(file).mode & 0o777 : 0o600, flag: 'wx' });
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}
