import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';

/**
 * Reading a file a configuration names (a rules file, a cases file, a classifier model, prompt or
 * examples): a rules file may be hostile or wrong, and `model_file: /dev/zero` or a FIFO must be a
 * load error, not a process that reads forever or waits for a writer.
 */

/**
 * O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, forever; the fstat on the
 * opened descriptor then refuses it (and devices, directories, sockets) whatever symlinks led there.
 */
export const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** Why a file could not be read; the message names the file and says what is wrong, never its content. */
export class FileReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileReadError';
  }
}

/** `1048576 bytes (1 MiB)`: a limit as a message gives it. */
function limitText(maxBytes: number): string {
  if (maxBytes % (1024 * 1024) === 0) return `${maxBytes} bytes (${maxBytes / (1024 * 1024)} MiB)`;
  if (maxBytes % 1024 === 0) return `${maxBytes} bytes (${maxBytes / 1024} KiB)`;
  return `${maxBytes} bytes`;
}

export function cannotRead(file: string, what: string, err: unknown): FileReadError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new FileReadError(`${file}: cannot read the ${what} (${code})`);
}

export function tooLarge(file: string, what: string, maxBytes: number): FileReadError {
  return new FileReadError(`${file}: the ${what} is larger than ${limitText(maxBytes)}, the limit`);
}

/** Refuses what is not a regular file, or is larger than `maxBytes` by its size. */
export function checkStat(file: string, what: string, stat: Stats, maxBytes: number): void {
  if (!stat.isFile()) throw new FileReadError(`${file}: the ${what} is not a regular file (symlinks are followed; a FIFO, device or directory is refused)`);
  if (stat.size > maxBytes) throw tooLarge(file, what, maxBytes);
}

/**
 * A regular file of at most `maxBytes`; anything else is a FileReadError. The size is checked on
 * fstat, and a file that grew since is caught by reading past the limit.
 */
export function readRegularFileSync(file: string, what: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(file, OPEN_FLAGS);
  } catch (err) {
    throw cannotRead(file, what, err);
  }
  try {
    const stat = fstatSync(fd);
    checkStat(file, what, stat, maxBytes);
    // Sized by fstat (a 200-byte prompt does not take a 16 KiB buffer), grown if the file grew since.
    let buffer = Buffer.allocUnsafe(Math.min(stat.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > maxBytes) throw tooLarge(file, what, maxBytes);
      if (length === buffer.length) {
        const grown = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
        buffer.copy(grown, 0, 0, length);
        buffer = grown;
      }
    }
    return buffer.subarray(0, length);
  } catch (err) {
    throw err instanceof FileReadError ? err : cannotRead(file, what, err);
  } finally {
    closeSync(fd);
  }
}
