import { pino, type Logger } from 'pino'

/** The daemon's one logger: JSON lines on stderr (stdout stays free for the CLI). */
export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: false }))
}
