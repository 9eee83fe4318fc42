import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sha256, type KeyRing } from '../accounts/keys-file.js';
import { UnauthorizedError } from '../errors.js';

/** Where the keys in force are read, once per request: a reload swaps `current` (LiveKeys). */
export interface KeysSource {
  readonly current: KeyRing;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The key a request presents: `Authorization: Bearer <key>` (OpenAI's SDKs), else `x-api-key:
 * <key>` (Anthropic's SDKs and many tools). A malformed Authorization header is no key: it is
 * not silently passed over for x-api-key.
 */
export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    return match ? match[1] : undefined;
  }
  const apiKey = request.headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey !== '' ? apiKey : undefined;
}

/**
 * An onRequest hook that admits a request only with one of the keys in force (KeyRing.lookup:
 * SHA-256, constant-time comparison with every key), and puts the caller on the exchange, its
 * name on the log line. `x-api-key` is then removed from the request: the upstream must never
 * see a client's Signalbox key (Authorization is replaced by the server key, which client
 * authentication requires).
 *
 * `adminDigest`: the SHA-256 of ADMIN_KEY. A request presenting it is refused before the keys are
 * looked up, even when the keys file holds the same digest: the admin key is never a client key.
 * Without client keys (`keys` undefined) that is all the hook does: the client's Authorization
 * would otherwise go upstream, and the admin key with it.
 */
export function clientAuthHook(keys: KeysSource | undefined, adminDigest?: Buffer): (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void {
  return (request, _reply, done) => {
    const presented = presentedKey(request);
    const digest = presented === undefined ? undefined : sha256(presented);
    if (digest !== undefined && adminDigest !== undefined && timingSafeEqual(digest, adminDigest)) {
      done(new UnauthorizedError());
      return;
    }
    if (keys === undefined) {
      done();
      return;
    }
    const caller = digest === undefined ? undefined : keys.current.lookupDigest(digest);
    if (caller === undefined) {
      done(new UnauthorizedError());
      return;
    }
    delete request.headers['x-api-key'];
    request.exchange.caller = caller;
    request.exchange.clientKeyId = caller.name;
    done();
  };
}
