/** Types of daemon-v8-flags.mjs (plain JavaScript, loaded before any TypeScript). */
export function daemonV8Flags(env?: Readonly<Record<string, string | undefined>>, cpus?: number): string[]
export function restartArgs(flags: readonly string[], execPath?: string, execArgv?: readonly string[], argv?: readonly string[]): string[] | undefined
export function applyDaemonV8Flags(): void
