// The one pino logger every module derives a child from. Redaction keeps credentials and raw alert
// payloads (which can carry command lines with secrets) out of logs; the case file keeps them.
import { pino } from 'pino';

export const logger = pino({
  name: 'casefile',
  level: process.env.CASEFILE_LOG_LEVEL ?? 'info',
  redact: {
    paths: [
      'authorization',
      'headers.authorization',
      'req.headers.authorization',
      'token',
      '*.token',
      'password',
      '*.password',
      'spec.alert.raw',
      'alert.raw',
      'env',
      '*.env',
    ],
    censor: '[redacted]',
  },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export type Logger = typeof logger;
