import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Quality feedback tokens (issue 17, item 4). Every routed answer carries one
 * (`x-signalbox-feedback-token`); a client sends it back to POST /v1/feedback with a label. The
 * token carries what the feedback is about (rule, split arm, model, time) and is signed with
 * FEEDBACK_SECRET, so the feedback needs no lookup and any replica with the same secret accepts it.
 *
 *   token = base64url(JSON {r, v?, m?, t}) "." base64url(HMAC-SHA256(secret, first part))
 *
 * The MAC is over the encoded payload, so verifying never decodes or parses unsigned bytes.
 */

/** What a token says: the rule that decided, the split arm, the model, and when it was issued (epoch ms). */
export interface FeedbackClaims {
  readonly rule: string;
  readonly variant: string | undefined;
  readonly model: string | undefined;
  readonly issuedAt: number;
}

/**
 * A longer token is refused before any work (no decoding, no HMAC): a client must not make the
 * server hash megabytes. Issued tokens stay well under it: each field is cut to MAX_FIELD_CHARS.
 */
export const MAX_TOKEN_CHARS = 2048;
/**
 * Rule, variant and model are cut to this many characters in a token: 3 fields of 128 UTF-16 units
 * of at most 3 UTF-8 bytes make at most about 1.6 KiB once base64url-encoded, under MAX_TOKEN_CHARS
 * and small enough for a response header. A model this long is `other` in the metrics anyway.
 */
export const MAX_FIELD_CHARS = 128;
/**
 * A token issued up to this far in the future is accepted: replicas' clocks differ by a few
 * seconds (NTP keeps them within far less); a token from further ahead was not issued by us now.
 */
export const MAX_CLOCK_SKEW_MS = 60_000;

const SIGNATURE_BYTES = 32;

export type TokenProblem = 'oversized' | 'malformed' | 'forged' | 'expired' | 'future';

export type TokenVerdict =
  | { readonly ok: true; readonly claims: FeedbackClaims }
  | { readonly ok: false; readonly problem: TokenProblem };

function sign(key: Buffer, payload: string): Buffer {
  return createHmac('sha256', key).update(payload).digest();
}

function cut(value: string | undefined): string | undefined {
  return value === undefined || value.length <= MAX_FIELD_CHARS ? value : value.slice(0, MAX_FIELD_CHARS);
}

/** The token for `claims` signed with `key`; undefined when it would not fit MAX_TOKEN_CHARS (only with escaped control characters in every field). */
export function issueToken(key: Buffer, claims: FeedbackClaims): string | undefined {
  const body: { r: string; v?: string; m?: string; t: number } = { r: cut(claims.rule)!, t: claims.issuedAt };
  if (claims.variant !== undefined) body.v = cut(claims.variant)!;
  if (claims.model !== undefined) body.m = cut(claims.model)!;
  const payload = Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
  const token = `${payload}.${sign(key, payload).toString('base64url')}`;
  return token.length <= MAX_TOKEN_CHARS ? token : undefined;
}

function optionalString(v: unknown): v is string | undefined {
  return v === undefined || typeof v === 'string';
}

/**
 * Checks a token a client sent: its length first, then its signature (timingSafeEqual over two
 * 32-byte buffers), then its payload, then its age against `now` (epoch ms) and `ttlMs`.
 */
export function verifyToken(key: Buffer, token: unknown, now: number, ttlMs: number): TokenVerdict {
  if (typeof token !== 'string') return { ok: false, problem: 'malformed' };
  if (token.length > MAX_TOKEN_CHARS) return { ok: false, problem: 'oversized' };
  const dot = token.indexOf('.');
  if (dot <= 0 || dot !== token.lastIndexOf('.')) return { ok: false, problem: 'malformed' };
  const payload = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1), 'base64url');
  // Node's base64url decoder skips characters outside the alphabet: a wrong length is malformed,
  // and a right length with other text still fails the comparison below.
  if (given.length !== SIGNATURE_BYTES) return { ok: false, problem: 'malformed' };
  if (!timingSafeEqual(given, sign(key, payload))) return { ok: false, problem: 'forged' };
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, problem: 'malformed' };
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { ok: false, problem: 'malformed' };
  const { r, v, m, t } = body as Record<string, unknown>;
  if (typeof r !== 'string' || !optionalString(v) || !optionalString(m) || typeof t !== 'number' || !Number.isFinite(t)) return { ok: false, problem: 'malformed' };
  if (t > now + MAX_CLOCK_SKEW_MS) return { ok: false, problem: 'future' };
  if (now - t > ttlMs) return { ok: false, problem: 'expired' };
  return { ok: true, claims: { rule: r, variant: v, model: m, issuedAt: t } };
}

/** The feedback key and settings of this process: issues a token per routed answer, verifies those sent back. */
export class FeedbackTokens {
  private readonly key: Buffer;

  constructor(
    secret: string,
    readonly ttlMs: number,
    /** Wall clock, epoch ms; injected in tests. */
    private readonly now: () => number = Date.now,
  ) {
    this.key = Buffer.from(secret, 'utf8');
  }

  /** One HMAC per answer: the cost every routed answer pays while FEEDBACK_SECRET is set. */
  issue(rule: string, variant: string | undefined, model: string | undefined): string | undefined {
    return issueToken(this.key, { rule, variant, model, issuedAt: this.now() });
  }

  verify(token: unknown): TokenVerdict {
    return verifyToken(this.key, token, this.now(), this.ttlMs);
  }
}
