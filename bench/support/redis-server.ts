import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { freePort } from './processes.js';
import { withTimeout as within } from './timeout.js';

/**
 * A real redis-server (Debian's package) on a loopback port of its own: what the Redis rate-limit
 * store's tests (test/support/redis.ts, which stops it after each test) and bench:accounts run
 * against. No test-runner types here, so the benchmark does not depend on test code.
 */
export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly child: ChildProcess;
  /** SIGKILLs the server (an outage, for failure-mode tests) and resolves once it has exited. */
  kill(): Promise<void>;
}

/** Whether `redis-server` is on the PATH (bench:accounts skips its Redis rows without it). */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Sends PING on a fresh connection; resolves on +PONG. */
async function ping(port: number): Promise<void> {
  const socket = createConnection({ port, host: '127.0.0.1' });
  try {
    await once(socket, 'connect');
    socket.write('PING\r\n');
    const [data] = (await once(socket, 'data')) as [Buffer];
    if (!data.toString('utf8').startsWith('+PONG')) throw new Error(`redis answered PING with ${JSON.stringify(data.toString('utf8'))}`);
  } finally {
    socket.destroy();
  }
}

/**
 * Starts `redis-server` with no persistence (`--save '' --appendonly no`: nothing written to the
 * checkout) on a free loopback port, waits for its "Ready to accept connections" line (an event,
 * not a sleep) and a PING, each within `timeoutMs`. A server that does not get ready is killed
 * before this rejects; `onStarted` gets the kill at once (a test registers it with t.after).
 */
export async function startRedisServer(timeoutMs: number, onStarted?: (kill: () => Promise<void>) => void): Promise<RedisServer> {
  // redis-server has no `--port 0`: a port is picked by binding a socket, then released for it.
  // Another process could take it in between; then this fails with the server's own message.
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', '/tmp'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await within(exited, 'redis-server to exit', timeoutMs);
  };
  onStarted?.(kill);
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Ready to accept connections')) {
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    void exited.then(() => reject(new Error(`redis-server exited before it was ready: ${output}`)));
  });
  try {
    await within(ready, `redis-server on port ${port} to be ready`, timeoutMs);
    // Keep draining its output so a chatty server never blocks on a full pipe.
    child.stdout!.resume();
    await within(ping(port), `redis-server on port ${port} to answer PING`, timeoutMs);
  } catch (err) {
    await kill();
    throw err;
  }
  return { port, url: `redis://127.0.0.1:${port}`, child, kill };
}
