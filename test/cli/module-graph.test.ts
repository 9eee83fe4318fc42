import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** Compiled to dist/test/cli/: dist/src is two levels up. */
const DIST_SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** The sources of src/rules/ (not dist's listing, which keeps files of moved or deleted sources). */
const RULES_SOURCES = fileURLToPath(new URL('../../../src/rules/', import.meta.url));

/** `import ... from './x.js'`, `import './x.js'`, `export ... from './x.js'` in tsc's output. */
const STATIC_IMPORT = /^\s*(?:import|export)\s+(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

/**
 * Every compiled file of dist/src that `entry` loads through static imports, `entry` included.
 * The entry's own `await import()`s count as static: an entry point enables the compile cache
 * first and imports everything else dynamically (src/compile-cache.ts).
 */
function staticGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(STATIC_IMPORT)) visit(resolve(dirname(file), m[1]!));
    if (file === entryFile) for (const m of text.matchAll(DYNAMIC_IMPORT)) visit(resolve(dirname(file), m[1]!));
  };
  const entryFile = join(DIST_SRC, entry);
  visit(entryFile);
  return new Set([...seen].map((f) => relative(DIST_SRC, f)));
}

test('the server and the CLI never load the fake OpenRouter (src/dev) through a static import', () => {
  for (const entry of ['main.js', 'cli/signalbox.js']) {
    const graph = staticGraph(entry);
    assert.ok(graph.size > 5, `${entry} loads ${graph.size} files`);
    const dev = [...graph].filter((f) => f.startsWith('dev/'));
    assert.deepEqual(dev, [], `${entry} loads ${dev.join(', ')}`);
  }
  assert.ok(staticGraph('main.js').has('server/app.js'));
  assert.ok(staticGraph('cli/signalbox.js').has('rules-file/loader.js'));
});

test('the fake is loaded only by the CLI\'s fake-openrouter command, on demand', () => {
  const graph = staticGraph('cli/signalbox.js');
  const dynamic = [...graph].filter((file) => file !== 'cli/signalbox.js').flatMap((file) =>
    [...readFileSync(join(DIST_SRC, file), 'utf8').matchAll(DYNAMIC_IMPORT)].map((m) => `${file} -> ${m[1]}`));
  assert.deepEqual(dynamic, ['cli/commands.js -> ../dev/fake-openrouter-cli.js']);
});

/** Node modules that do I/O or keep the process busy: file system, events, timers, sockets, processes. */
const IO_MODULE = /^\s*(?:import|export)\s+(?:[^'";]*?\s+from\s+)?['"]node:(fs|fs\/promises|events|timers|timers\/promises|net|child_process|worker_threads)['"]/m;

test('src/rules/ is the pure engine: nothing it loads reads files, emits events or sets timers', () => {
  const entries = readdirSync(RULES_SOURCES).filter((f) => f.endsWith('.ts')).map((f) => `rules/${f.replace(/\.ts$/, '.js')}`);
  assert.ok(entries.includes('rules/ruleset.js'));
  const impure = [...new Set(entries.flatMap((entry) => [...staticGraph(entry)]))]
    .filter((file) => IO_MODULE.test(readFileSync(join(DIST_SRC, file), 'utf8')));
  assert.deepEqual(impure, []);
});

test('the entry points enable the compile cache before any other module of dist/src is loaded', () => {
  for (const entry of ['main.js', 'cli/signalbox.js']) {
    const text = readFileSync(join(DIST_SRC, entry), 'utf8');
    const ownStatic = [...text.matchAll(STATIC_IMPORT)].map((m) => m[1]!.replace(/^(\.\.\/)+|^\.\//, ''));
    // Static imports are compiled before the entry's body runs, so only compile-cache.js may be one.
    assert.deepEqual(ownStatic, ['compile-cache.js'], `${entry} statically imports ${ownStatic.join(', ')}`);
    assert.ok(text.indexOf('enableCompileCache()') < text.search(DYNAMIC_IMPORT), `${entry} enables the cache before its first import()`);
  }
});
