/**
 * Runs the fake OpenRouter by hand: `npm run fake-openrouter` (FAKE_OPENROUTER_PORT, default 8081;
 * FAKE_OPENROUTER_QUIET=1 neither prints nor keeps requests, for benchmarks).
 * Point Signalbox at it with OPENROUTER_BASE_URL=http://127.0.0.1:8081/api/v1.
 * Inject a fault per request with a header, e.g. `x-fake-fault: {"type":"status","status":429}`.
 */
import { FakeOpenRouter } from './fake-openrouter.js';

const port = Number(process.env.FAKE_OPENROUTER_PORT ?? 8081);
const quiet = process.env.FAKE_OPENROUTER_QUIET === '1';
const fake = new FakeOpenRouter({ record: !quiet });
const url = await fake.listen(port, process.env.FAKE_OPENROUTER_HOST ?? '127.0.0.1');
process.stdout.write(`fake OpenRouter listening: OPENROUTER_BASE_URL=${url}\n`);
if (!quiet) {
  fake.on('request', (r: { method: string; url: string; fault?: unknown }) => {
    process.stdout.write(`${r.method} ${r.url}${r.fault ? ` fault=${JSON.stringify(r.fault)}` : ''}\n`);
  });
}
const stop = (): void => {
  void fake.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
