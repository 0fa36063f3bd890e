import type { Logger } from 'pino'
import { DaemonError } from './errors.ts'

/** A step of start-up with the step that undoes it. */
interface Step {
  readonly name: string
  readonly stop: () => Promise<void>
}

/**
 * Starts services in dependency order and stops them in reverse. A failed start stops what had
 * started; a failed stop is logged and the remaining ones still stop. Both are idempotent.
 */
export class Lifecycle {
  readonly #log: Logger
  #started: Step[] = []

  constructor(logger: Logger) {
    this.#log = logger
  }

  /** Runs `start`; on success remembers `stop` for shutdown. */
  async start<T>(name: string, start: () => Promise<T>, stop: (value: T) => Promise<void>): Promise<T> {
    let value: T
    try {
      value = await start()
    } catch (error) {
      // An expected start failure (a port in use, a bad key file) is the CLI's one line
      // (docs/cli.md, start); only an unexpected one is logged with its stack.
      if (error instanceof DaemonError) this.#log.debug({ code: error.code, service: name }, 'start failed; stopping what had started')
      else this.#log.error({ err: error, service: name }, 'start failed; stopping what had started')
      await this.stopAll()
      throw error
    }
    this.#started.push({ name, stop: () => stop(value) })
    return value
  }

  /** Stops every started service, last first. */
  async stopAll(): Promise<void> {
    const steps = this.#started.reverse()
    this.#started = []
    for (const step of steps) {
      try {
        await step.stop()
      } catch (error) {
        this.#log.error({ err: error, service: step.name }, 'stop failed')
      }
    }
  }
}
