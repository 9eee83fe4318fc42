import type { FastifyReply, FastifyRequest } from 'fastify';
import type { KeyRing } from '../accounts/keys-file.js';
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
function presentedKey(request: FastifyRequest): string | undefined {
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
 */
export function clientAuthHook(keys: KeysSource): (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void {
  return (request, _reply, done) => {
    const presented = presentedKey(request);
    const caller = presented === undefined ? undefined : keys.current.lookup(presented);
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
