import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../atomic-file.js';

/**
 * The last good catalog, kept on disk in DATA_DIR so that a restart without network starts with
 * it. The file holds the upstream's response as it came (so a later version parses it with its own
 * rules) and when it was fetched (so `signalbox_catalog_age_seconds` tells its true age).
 */

/** A Models API response larger than this is refused, fetched or on disk (OpenRouter's is about 1-2 MB). */
export const MAX_CATALOG_BYTES = 16 * 1024 * 1024;
/** Room for the wrapper around the response in the file. */
const WRAPPER_BYTES = 1024;

export const CATALOG_FILE_NAME = 'catalog.json';

export interface StoredCatalog {
  /** Unix milliseconds of the fetch. */
  readonly fetchedAt: number;
  /** The Models API response, parsed. */
  readonly response: unknown;
}

/** Reads a regular file of at most `maxBytes`; larger files, FIFOs and devices are refused without reading them. */
export async function readBoundedFile(path: string, maxBytes: number): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${path} is not a regular file`);
    if (stat.size > maxBytes) throw new Error(`${path} is ${stat.size} bytes, more than the ${maxBytes} allowed`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

export class CatalogStore {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, CATALOG_FILE_NAME);
  }

  /** The stored catalog; undefined when there is none. Throws when the file exists but cannot be read. */
  async load(): Promise<StoredCatalog | undefined> {
    let text: string;
    try {
      text = await readBoundedFile(this.path, MAX_CATALOG_BYTES + WRAPPER_BYTES);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const stored = JSON.parse(text) as { fetched_at?: unknown; response?: unknown } | null;
    const fetchedAt = stored?.fetched_at;
    if (typeof fetchedAt !== 'number' || !Number.isFinite(fetchedAt)) throw new Error(`${this.path} has no fetched_at`);
    return { fetchedAt, response: stored?.response };
  }

  /**
   * Replaces the stored catalog atomically: written to a temporary file in the same directory, then
   * renamed over the old one (rename(2) is atomic within a filesystem), so a crash mid-write leaves
   * the previous catalog, never half a file. `rawResponse` is JSON the caller has parsed already.
   */
  async save(rawResponse: string, fetchedAt: number): Promise<void> {
    await writeFileAtomically(this.path, `{"fetched_at":${fetchedAt},"response":${rawResponse}}\n`);
  }
}
