import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { UnauthorizedError } from '../errors.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * An onRequest hook that admits a request only with `Authorization: Bearer <one of keys>`.
 * Keys are kept as SHA-256 digests and compared in constant time, all of them every time, so
 * neither timing nor a heap dump gives a key away.
 */
export function clientAuthHook(keys: readonly string[]): (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void {
  const digests = keys.map(digest);
  return (request, _reply, done) => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) {
      done(new UnauthorizedError());
      return;
    }
    const presented = digest(match[1]!);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, presented) || ok;
    done(ok ? undefined : new UnauthorizedError());
  };
}
