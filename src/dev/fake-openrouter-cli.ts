/**
 * `signalbox fake-openrouter`: the fake OpenRouter as a command, for trying Signalbox without an
 * OpenRouter account and for benchmarks. Loaded by src/cli/commands.ts with a dynamic import only
 * when this command runs, so neither the server nor `check`/`test` load the fake.
 * Options and faults: docs/fake-openrouter.md.
 */
import { parseArgs } from 'node:util';
import type { CliIo } from '../cli/commands.js';
import { FakeOpenRouter } from './fake-openrouter.js';

export const FAKE_OPENROUTER_USAGE = `usage:
  signalbox fake-openrouter [--port 8081] [--host 127.0.0.1] [--model <id>]... [--quiet]
    --port   TCP port, 0 picks a free one (env FAKE_OPENROUTER_PORT, default 8081)
    --host   address to listen on (env FAKE_OPENROUTER_HOST, default 127.0.0.1)
    --model  a model id to serve besides the built-in catalog; repeatable
             (env FAKE_OPENROUTER_MODELS, comma-separated)
    --quiet  print only the listening line, not one line per request (env FAKE_OPENROUTER_QUIET=1)
`;

/** Runs the fake until `io.interrupted()` settles (SIGTERM, SIGINT); resolves to the exit code. */
export async function fakeOpenRouterCommand(args: readonly string[], io: CliIo): Promise<number> {
  let values: { port?: string; host?: string; model?: string[]; quiet?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: { port: { type: 'string' }, host: { type: 'string' }, model: { type: 'string', multiple: true }, quiet: { type: 'boolean' } },
    }));
  } catch (err) {
    io.err(`signalbox fake-openrouter: ${(err as Error).message}\n${FAKE_OPENROUTER_USAGE}`);
    return 2;
  }
  const portText = values.port ?? io.env.FAKE_OPENROUTER_PORT ?? '8081';
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65_535) {
    io.err(`signalbox fake-openrouter: port must be a whole number from 0 to 65535, not "${portText}"\n${FAKE_OPENROUTER_USAGE}`);
    return 2;
  }
  const extraModels = [...(io.env.FAKE_OPENROUTER_MODELS ?? '').split(','), ...(values.model ?? [])].map((m) => m.trim()).filter((m) => m !== '');
  const quiet = values.quiet === true || io.env.FAKE_OPENROUTER_QUIET === '1';

  // Nothing is recorded: a fake left running for hours must not grow with every request.
  const fake = new FakeOpenRouter({ record: false, extraModels });
  let url: string;
  try {
    url = await fake.listen(port, values.host ?? io.env.FAKE_OPENROUTER_HOST ?? '127.0.0.1');
  } catch (err) {
    io.err(`signalbox fake-openrouter: cannot listen: ${(err as Error).message}`);
    return 1;
  }
  io.out(`fake OpenRouter listening: OPENROUTER_BASE_URL=${url}`);
  if (!quiet) {
    fake.on('request', (r: { method: string; url: string; fault?: unknown }) => {
      io.out(`${r.method} ${r.url}${r.fault ? ` fault=${JSON.stringify(r.fault)}` : ''}`);
    });
  }
  // Without a stop signal (a caller that gave none) it runs until the process ends.
  await (io.interrupted?.() ?? new Promise(() => {}));
  await fake.close();
  return 0;
}
