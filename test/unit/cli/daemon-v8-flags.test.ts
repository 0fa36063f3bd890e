import { describe, expect, it, vi } from 'vitest'
import { applyDaemonV8Flags, daemonV8Flags, restartArgs } from '../../../bin/daemon-v8-flags.mjs'

describe('daemonV8Flags', () => {
  it('runs V8 single-threaded on 2 CPUs or fewer, with its helper threads on more', () => {
    expect(daemonV8Flags({}, 1)).toEqual(['--single-threaded'])
    expect(daemonV8Flags({}, 2)).toEqual(['--single-threaded'])
    expect(daemonV8Flags({}, 3)).toEqual([])
    expect(daemonV8Flags({}, 16)).toEqual([])
  })

  it('takes MESHSYNC_V8_FLAGS instead when it is set, empty meaning none', () => {
    expect(daemonV8Flags({ MESHSYNC_V8_FLAGS: '' }, 2)).toEqual([])
    expect(daemonV8Flags({ MESHSYNC_V8_FLAGS: '  --single-threaded-gc   --max-old-space-size=512 ' }, 16)).toEqual([
      '--single-threaded-gc',
      '--max-old-space-size=512',
    ])
  })
})

describe('restartArgs', () => {
  const argv = ['/usr/bin/node', '/opt/meshsync/bin/meshsync.mjs', 'start', '--data-dir', '/d']

  it("puts the missing flags before the process's own node options and keeps its arguments", () => {
    expect(restartArgs(['--single-threaded'], '/usr/bin/node', ['--cpu-prof'], argv)).toEqual([
      '/usr/bin/node',
      '--single-threaded',
      '--cpu-prof',
      '/opt/meshsync/bin/meshsync.mjs',
      'start',
      '--data-dir',
      '/d',
    ])
    expect(restartArgs(['--a', '--b'], '/usr/bin/node', ['--b'], argv)).toEqual(['/usr/bin/node', '--a', '--b', ...argv.slice(1)])
  })

  it('is undefined once the process runs with every flag, so the restart happens once', () => {
    expect(restartArgs(['--single-threaded'], '/usr/bin/node', ['--single-threaded'], argv)).toBeUndefined()
    expect(restartArgs([], '/usr/bin/node', [], argv)).toBeUndefined()
  })
})

describe('applyDaemonV8Flags', () => {
  it('execs this process with the flags in front, or says in one line why it runs without them', () => {
    const calls: unknown[][] = []
    const execve = ((...args: unknown[]) => {
      calls.push(args)
      throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })
    }) as unknown as (file: string) => never
    const errors: string[] = []
    const spy = vi.spyOn(console, 'error').mockImplementation((line: string) => void errors.push(line))
    try {
      expect(() => applyDaemonV8Flags(execve, ['--definitely-not-set-here'])).not.toThrow()
    } finally {
      spy.mockRestore()
    }
    expect(calls).toHaveLength(1)
    expect(calls[0]?.[0]).toBe(process.execPath)
    expect((calls[0]?.[1] as string[]).slice(0, 2)).toEqual([process.execPath, '--definitely-not-set-here'])
    expect(errors).toEqual(['meshsync: running without the V8 flags --definitely-not-set-here: restarting with them failed (EACCES: permission denied)'])
  })

  it('does nothing when the flags are there already or execve is missing', () => {
    const execve = vi.fn() as unknown as (file: string) => never
    applyDaemonV8Flags(execve, [])
    applyDaemonV8Flags(null, ['--x'])
    expect(execve).not.toHaveBeenCalled()
  })
})
