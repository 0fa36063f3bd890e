import { spawn } from 'node:child_process'
import { meshsyncBin, repoRoot } from './daemon-process.ts'

/** How a process a test ran ended, and what it printed. */
export interface ProcessResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  /** Environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv
  /** What the process reads on stdin (default: nothing, stdin closed). */
  readonly input?: string
  /** SIGKILL after this many ms: a guard against a hang, not a speed check (default 60 s; 0: none). */
  readonly guardMs?: number
}

/** Runs `command args` in the repository root to its end; resolves with its exit and output. */
export function runProcess(command: string, args: readonly string[], options: RunOptions = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    const guardMs = options.guardMs ?? 60_000
    const timer = guardMs > 0 ? setTimeout(() => child.kill('SIGKILL'), guardMs) : undefined
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    child.stdin.end(options.input ?? '')
  })
}

/** The environment without MESHSYNC_DATA_DIR, so only `--data-dir` decides. */
export function cliEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.MESHSYNC_DATA_DIR
  return env
}

/** Runs `meshsync ARGS` as a user would (this Node, no MESHSYNC_DATA_DIR from the test's environment). */
export function runCli(args: readonly string[], options: Omit<RunOptions, 'env'> & { node?: string } = {}): Promise<ProcessResult> {
  return runProcess(options.node ?? process.execPath, [meshsyncBin, ...args], { ...options, env: cliEnv() })
}
