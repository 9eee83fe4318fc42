/**
 * Types for the two undici modules the proxy loads directly instead of undici's index
 * (src/upstream/client.ts explains why). Type-only: `import type` of 'undici' is erased, so the
 * index is never loaded at run time. test/upstream/client.test.ts holds these paths to the
 * installed undici.
 */
declare module 'undici/lib/dispatcher/pool.js' {
  import type { Pool } from 'undici';
  const PoolClass: typeof Pool;
  export default PoolClass;
}

declare module 'undici/lib/core/util.js' {
  import type { IncomingHttpHeaders } from 'node:http';
  /** Raw header name/value buffers, as a handler's onHeaders gets them, to an object of lower-case names. */
  export function parseHeaders(headers: readonly Buffer[]): IncomingHttpHeaders;
}
