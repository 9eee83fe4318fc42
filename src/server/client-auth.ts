import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { UnauthorizedError } from '../errors.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * The name of a client key on the log line: `key:` and the first 8 hex digits of the key's
 * SHA-256, never the key. A hash rather than the key's position in SIGNALBOX_API_KEYS, so the id
 * stays the same across restarts and when keys are added, removed or reordered; an operator finds
 * a key's id with `printf %s "$KEY" | sha256sum | cut -c1-8`, and the startup line lists them.
 * 32 bits of a hash say nothing usable about a random secret key (and a guessable key is no
 * secret: the proxy itself would confirm guesses).
 */
export function clientKeyId(key: string): string {
  return `key:${digest(key).toString('hex', 0, 4)}`;
}

/**
 * An onRequest hook that admits a request only with `Authorization: Bearer <one of keys>`, and
 * puts the matching key's id on the exchange (for the log line). Keys are kept as SHA-256 digests
 * and compared in constant time, all of them every time, so neither timing nor a heap dump gives a
 * key away.
 */
export function clientAuthHook(keys: readonly string[]): (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void {
  const digests = keys.map(digest);
  const ids = keys.map(clientKeyId);
  return (request, _reply, done) => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) {
      done(new UnauthorizedError());
      return;
    }
    const presented = digest(match[1]!);
    let matched = -1;
    for (let i = 0; i < digests.length; i++) {
      if (timingSafeEqual(digests[i]!, presented)) matched = i;
    }
    if (matched === -1) {
      done(new UnauthorizedError());
      return;
    }
    request.exchange.clientKeyId = ids[matched];
    done();
  };
}
