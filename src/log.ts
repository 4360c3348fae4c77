import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Paths the logger itself redacts: secrets stay out of logs by construction, not by discipline.
 * Any object logged with one of these keys (at any of these depths) shows `[redacted]`.
 */
const REDACT_PATHS = [
  'password',
  'token',
  'secret',
  'secretKey',
  'authorization',
  'Authorization',
  '*.password',
  '*.token',
  '*.secret',
  '*.secretKey',
  '*.authorization',
  '*.Authorization',
  '*.*.password',
  '*.*.token',
  '*.*.secret',
  'headers.authorization',
  'req.headers.authorization',
];

export function makeLogger(
  opts: { level?: string; name?: string } = {},
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      name: opts.name ?? 'ftp-sync',
      level: opts.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
