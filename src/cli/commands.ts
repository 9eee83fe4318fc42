/**
 * The `signalbox` command line (entry point: signalbox.ts).
 *
 * signalbox check [rules.yaml]           validate a rules file (exit 1 with positioned errors)
 * signalbox test <cases.yaml> [--rules rules.yaml]
 *                                          run rule unit tests (exit 1 when a case fails)
 * signalbox report <log | ->               cost, baseline cost and savings per rule and model, from a request log
 * signalbox report --by variant [--json] <log | ->   the arms of splits compared, with confidence intervals
 * signalbox keys hash|new ...               hash a client key, make one (keys.ts)
 * signalbox spend [reset <name>] ...        a running server's spend, a key's reset, through its admin API (spend.ts)
 * signalbox classifier train|eval ...      retrain the local classifier, measure a model on a labelled set (classifier.ts)
 * signalbox fake-openrouter [options]      run the fake OpenRouter until SIGTERM or SIGINT
 * Exit codes: 0 ok, 1 invalid file or failed case, 2 wrong usage.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfigError } from '../errors.js';
import { parseCases, runCases } from '../rules/cases.js';
import { loadRulesFile, readBoundedTextSync } from '../rules-file/loader.js';
import { parseCatalog, type Catalog } from '../catalog/catalog.js';
import { MAX_CATALOG_BYTES } from '../catalog/store.js';
import { CLASSIFIER_USAGE, classifierCommand } from './classifier.js';
import { reportCommand } from './report.js';
import { KEYS_USAGE, keysCommand } from './keys.js';
import { SPEND_USAGE, spendCommand } from './spend.js';

/** A pinned catalog file (OpenRouter's /models JSON); a file that is not one is a usage error with its reason. */
function loadCatalogFile(file: string): Catalog {
  let json: unknown;
  try {
    // A regular file within the catalog's own bound (a FIFO would hang the command).
    const stat = statSync(file);
    if (!stat.isFile()) throw new Error('not a regular file');
    if (stat.size > MAX_CATALOG_BYTES) throw new Error(`larger than ${MAX_CATALOG_BYTES} bytes`);
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`invalid catalog file ${file}`, [`${file}: ${err instanceof Error ? err.message : String(err)}`]);
  }
  const catalog = parseCatalog(json);
  if (catalog.size === 0) throw new ConfigError(`invalid catalog file ${file}`, [`${file}: no usable model (expected OpenRouter's GET /models answer: { "data": [...] })`]);
  return catalog;
}

const USAGE = `usage:
  signalbox check [rules.yaml] [--catalog models.json]
                                                    validate a rules file (default: $RULES_FILE or ./rules.yaml);
                                                    with a catalog, warn about the models it does not list
  signalbox test <cases.yaml> [--rules rules.yaml] [--catalog models.json]
                                                    run rule unit tests against a rules file (and a pinned model catalog)
  signalbox report <request.log | ->                cost, baseline cost and what routing saved, per rule and model
  signalbox report --by variant [--json] <log | ->  per rule and split arm: cost, latency, errors, feedback, shadow agreement, with 95% intervals
  signalbox fake-openrouter [--port 8081] ...       run a fake OpenRouter (docs/fake-openrouter.md)
${KEYS_USAGE.slice('usage:\n'.length)}
${SPEND_USAGE.slice('usage:\n'.length)}
${CLASSIFIER_USAGE.slice('usage:\n'.length)}`;

/**
 * Every subcommand. The container's entrypoint (docker-entrypoint.sh) runs the CLI when its first
 * argument is one of these, and the server otherwise; a test keeps the two lists equal.
 */
export const CLI_COMMANDS = ['check', 'test', 'report', 'keys', 'spend', 'classifier', 'fake-openrouter', 'help', '--help', '-h'] as const;

export interface CliIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /**
   * Settles when the process is asked to stop (SIGTERM, SIGINT): long-running commands call it
   * and end then. A function, so that commands which end by themselves install no signal handler.
   */
  readonly interrupted?: () => Promise<unknown>;
  /** Where `report -` reads the log from; process.stdin by default. */
  readonly stdin?: Readable;
}

/** Runs the CLI, long-running commands included; resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv[0] === 'fake-openrouter') {
    // Imported only here, when asked for: neither the server nor check/test load the fake.
    const { fakeOpenRouterCommand } = await import('../dev/fake-openrouter-cli.js');
    return fakeOpenRouterCommand(argv.slice(1), io);
  }
  if (argv[0] === 'report') return reportCommand(argv.slice(1), io, io.stdin ?? process.stdin);
  if (argv[0] === 'keys') return keysCommand(argv.slice(1), io, io.stdin ?? process.stdin);
  if (argv[0] === 'spend') return spendCommand(argv.slice(1), io);
  return runCli(argv, io);
}

/** Runs the commands that end by themselves (all but fake-openrouter); returns the exit code. */
export function runCli(argv: readonly string[], io: CliIo): number {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'check':
        return check(rest, io);
      case 'test':
        return test(rest, io);
      case 'classifier':
        return classifierCommand(rest, io);
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return 0;
      default:
        io.err(command ? `signalbox: unknown command "${command}"\n${USAGE}` : USAGE);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) io.err(p);
      return 1;
    }
    throw err;
  }
}

function check(args: readonly string[], io: CliIo): number {
  const catalogAt = args.indexOf('--catalog');
  const catalogFile = catalogAt === -1 ? undefined : args[catalogAt + 1];
  const positional = catalogAt === -1 ? args : [...args.slice(0, catalogAt), ...args.slice(catalogAt + 2)];
  if (positional.length > 1 || (catalogAt !== -1 && catalogFile === undefined)) {
    io.err(USAGE);
    return 2;
  }
  const file = positional[0] ?? io.env.RULES_FILE ?? './rules.yaml';
  const rules = loadRulesFile(file);
  io.out(`ok: ${file}: ${rules.rules.length} rules, ${rules.tiers.length} tiers, hash ${rules.hash}`);
  if (catalogFile !== undefined) {
    const catalog = loadCatalogFile(catalogFile);
    // Names without a `/` are no model ids (`auto`, values compared in conditions).
    for (const model of rules.models) if (model.includes('/') && catalog.get(model) === undefined) io.out(`warning: ${model} is not in the catalog ${catalogFile}: as a fallback it is not sent, and choose drops it`);
  }
  return 0;
}

function test(args: readonly string[], io: CliIo): number {
  const positional: string[] = [];
  let rulesArg: string | undefined;
  let catalogArg: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--rules' || args[i] === '--catalog') {
      const value = args[i + 1];
      if (value === undefined) {
        io.err(USAGE);
        return 2;
      }
      if (args[i] === '--rules') rulesArg = value;
      else catalogArg = value;
      i++;
    } else {
      positional.push(args[i]!);
    }
  }
  if (positional.length !== 1) {
    io.err(USAGE);
    return 2;
  }
  const casesFile = positional[0]!;
  // Bounded and regular files only, like the rules file: a FIFO would hang the command.
  const cases = parseCases(readBoundedTextSync(casesFile, 'cases file'), casesFile);
  // --rules wins; else the file the cases name, relative to the cases file; else the default.
  const rulesFile = rulesArg ?? (cases.rules ? resolve(dirname(casesFile), cases.rules) : io.env.RULES_FILE ?? './rules.yaml');
  const rules = loadRulesFile(rulesFile);
  // Only a pinned catalog, never a live fetch: a test must give the same answer tomorrow.
  const catalogFile = catalogArg ?? (cases.catalog ? resolve(dirname(casesFile), cases.catalog) : undefined);
  const catalog = catalogFile === undefined ? undefined : loadCatalogFile(catalogFile);
  const results = runCases(rules, cases, catalog);
  let failed = 0;
  results.forEach((r, i) => {
    if (r.passed) {
      io.out(`ok   ${i + 1} - ${r.name}`);
    } else {
      failed++;
      io.out(`FAIL ${i + 1} - ${r.name}`);
      for (const m of r.mismatches) io.out(`       ${m}`);
    }
  });
  io.out(`rules: ${rulesFile} (hash ${rules.hash})`);
  if (catalogFile !== undefined) io.out(`catalog: ${catalogFile} (${catalog!.size} models)`);
  else if (results.some((r) => r.warning !== undefined)) io.out('no catalog pinned (--catalog, or catalog: in the cases file): choose took its candidates in the listed order');
  io.out(`${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}
