import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { trackChild } from './children.ts'

/** What every child reports: `{type}`; `error` fails whatever waits on the child. */
export interface Report {
  readonly type: string
}

/**
 * A Node child process the bench drives over IPC (`fork` on the bench's own Node): commands go
 * out with {@link send}, reports come back as `{type, ...}` messages, awaited one type at a time
 * with {@link next} or streamed with {@link on}.
 */
export class IpcChild<C extends Report, R extends Report> {
  readonly #child: ChildProcess
  readonly #output: string[] = []
  readonly #waiters = new Set<{ type: string; resolve: (r: R) => void; reject: (e: Error) => void }>()
  readonly #listeners = new Map<string, (r: R) => void>()
  #exited: string | undefined

  private constructor(child: ChildProcess) {
    this.#child = child
    const keep = (chunk: Buffer): void => {
      this.#output.push(chunk.toString())
      if (this.#output.length > 200) this.#output.shift()
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    child.on('message', (message: R) => {
      if (message.type === 'error') {
        this.#listeners.get('error')?.(message)
        const error = new Error(`${(message as R & { error?: string }).error ?? 'child error'}`)
        for (const w of this.#waiters) w.reject(error)
        this.#waiters.clear()
        return
      }
      this.#listeners.get(message.type)?.(message)
      for (const w of this.#waiters) {
        if (w.type === message.type) {
          this.#waiters.delete(w)
          w.resolve(message)
          break
        }
      }
    })
    child.once('exit', (code, signal) => {
      this.#exited = `exited (code ${code}, signal ${signal})`
      const error = new Error(`child ${this.#exited}:\n${this.output}`)
      for (const w of this.#waiters) w.reject(error)
      this.#waiters.clear()
    })
  }

  /** Forks `script` with the bench's Node (which runs .ts directly) and waits for its `ready` report. */
  static async start<C extends Report, R extends Report>(
    script: string,
    options: { args?: readonly string[]; env?: Readonly<Record<string, string>>; cwd?: string; readyTimeoutMs?: number } = {},
  ): Promise<{ child: IpcChild<C, R>; ready: R }> {
    const proc = fork(script, [...(options.args ?? [])], {
      execPath: process.execPath,
      execArgv: [],
      ...(options.cwd !== undefined && { cwd: options.cwd }),
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    trackChild(proc)
    const child = new IpcChild<C, R>(proc)
    try {
      const ready = await child.next('ready', options.readyTimeoutMs ?? 60_000)
      return { child, ready }
    } catch (error) {
      await child.stop()
      throw error
    }
  }

  get pid(): number {
    return this.#child.pid as number
  }

  send(command: C): void {
    if (this.#exited === undefined) this.#child.send(command)
  }

  /** The next report of `type` (an `error` report or the child's exit rejects). */
  next(type: string, timeoutMs = 120_000): Promise<R> {
    if (this.#exited !== undefined) return Promise.reject(new Error(`child ${this.#exited}:\n${this.output}`))
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(new Error(`no '${type}' report from the child in ${timeoutMs} ms:\n${this.output}`))
      }, timeoutMs)
      const waiter = {
        type,
        resolve: (r: R) => {
          clearTimeout(timer)
          resolve(r)
        },
        reject: (e: Error) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.#waiters.add(waiter)
    })
  }

  /** Sends `command` and waits for the report of `type` it answers with. */
  async request(command: C, type: string, timeoutMs?: number): Promise<R> {
    const answer = this.next(type, timeoutMs)
    this.send(command)
    return answer
  }

  /** Calls `handler` with every report of `type` (one handler per type). */
  on(type: string, handler: (r: R) => void): void {
    this.#listeners.set(type, handler)
  }

  /** Asks the child to stop (`{type: 'stop'}`), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.#exited !== undefined) return
    const exit = once(this.#child, 'exit')
    try {
      this.#child.send({ type: 'stop' })
    } catch {
      this.#child.kill('SIGKILL')
    }
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), timeoutMs)
    await exit
    clearTimeout(timer)
  }

  get output(): string {
    return this.#output.join('')
  }
}
