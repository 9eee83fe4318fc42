import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Writes `data` to a temporary file beside `path`, flushes it to disk, then renames it over `path`
 * (its directory made first). rename(2) is atomic within a filesystem, so a reader (or a restart
 * after a crash) finds the old file or the new one, never half of one; the fsync before it makes
 * the new file's bytes durable before its name points at them (without it, a power loss can leave
 * the renamed file empty on ext4 and others). Used for the catalog, the embedding vectors and the
 * spend snapshots in DATA_DIR.
 */
export async function writeFileAtomically(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temporary, 'w', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}
