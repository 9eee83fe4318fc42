// Loaded with `node --expose-gc --import <this file>` into the floor and Signalbox alike, for the
// memory measurement only (bench/support/memory.ts): on SIGUSR2 it runs two full GCs (the second
// collects what the first's finalizers released) and writes process.memoryUsage().heapUsed to
// $BENCH_HEAP_FILE, through a temporary file and a rename so that the reader never sees half a
// number. It allocates nothing until it is signalled, and src/ is left as it is.
// SIGUSR2: Node's own handlers take SIGUSR1 (the inspector); Signalbox takes SIGHUP, SIGTERM, SIGINT.
import { renameSync, writeFileSync } from 'node:fs';

const file = process.env.BENCH_HEAP_FILE;
if (file && typeof globalThis.gc === 'function') {
  const gc = globalThis.gc;
  process.on('SIGUSR2', () => {
    try {
      gc();
      gc();
      writeFileSync(`${file}.tmp`, `${process.memoryUsage().heapUsed}\n`);
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      // A throw here would end the process under test; the reader times out and says so.
      process.stderr.write(`heap-probe: ${err}\n`);
    }
  });
}
