import { describe, expect, it } from 'vitest'
import { daemonV8Flags, restartArgs } from '../../../bin/daemon-v8-flags.mjs'

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
