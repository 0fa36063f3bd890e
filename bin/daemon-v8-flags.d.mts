/** Types of daemon-v8-flags.mjs (plain JavaScript, loaded before any TypeScript). */
export function daemonV8Flags(env?: Readonly<Record<string, string | undefined>>, cpus?: number): string[]
export function restartArgs(flags: readonly string[], execPath?: string, execArgv?: readonly string[], argv?: readonly string[]): string[] | undefined
/** `execve`: null for none (as on Windows); left out, `process.execve`. */
export function applyDaemonV8Flags(execve?: ((file: string, args?: readonly string[], env?: NodeJS.ProcessEnv) => never) | null, flags?: readonly string[]): void
