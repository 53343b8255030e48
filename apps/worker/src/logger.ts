import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stdout, one object per line. Level from LETHE_LOG_LEVEL (default
 * info). Fields that could hold secrets are censored wherever they appear.
 */
export function createLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  return pino({
    name: 'lethe-worker',
    level: env['LETHE_LOG_LEVEL'] ?? 'info',
    redact: {
      paths: ['*.password', '*.secretKey', '*.accessKey', '*.sessionToken', '*.authorization'],
      censor: 'REDACTED',
    },
  });
}
