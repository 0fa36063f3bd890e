import type { Logger } from 'pino'

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
      this.#log.error({ err: error, service: name }, 'start failed; stopping what had started')
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
