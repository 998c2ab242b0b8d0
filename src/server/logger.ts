// Structured JSON logs (pino). Async destination so access logs stay off the hot path.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, opts: { sync?: boolean } = {}): Logger {
  return pino({ level, base: { svc: 'shoal' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ sync: opts.sync ?? false }));
}
