import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../config/load.js';

/**
 * Paths pino censors wherever they appear. Switchyard never logs headers or config secrets on
 * purpose; this is the second line of defence for a stray object (an error's cause, a debug dump).
 */
export const REDACTED_PATHS = [
  'authorization', 'headers.authorization', 'req.headers.authorization', '*.headers.authorization',
  'cookie', 'headers.cookie', 'req.headers.cookie',
  'api_key', '*.api_key', 'apiKey', '*.apiKey', 'keys', '*.keys',
];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'switchyard' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
