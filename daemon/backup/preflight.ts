import { randomBytes } from 'node:crypto'
import { open, rm, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join } from 'node:path'
import { BackupError } from './errors.ts'
import { openRepository } from './target.ts'

/**
 * Checks a repository target before an operation queues (docs/backups.md, Where backups go): an
 * `s3://` URL that parses, or an absolute path. A path that is written to (create, synthesize,
 * prune) must be a writable directory, or not exist yet under a writable directory; one only read
 * (list, verify, restore) must be a directory when it exists. Every check is a few system calls
 * and never retries: a target such as `/proc/self` (a directory nothing can be created in) is
 * refused at once with INVALID_TARGET, as is a relative path (the daemon's working directory is
 * not the caller's).
 */
export async function checkTarget(target: string, access: 'read' | 'write'): Promise<void> {
  if (target.trim() === '') throw new BackupError('INVALID_TARGET', 'the backup target is empty')
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    // Parses the URL (and refuses other schemes) without connecting.
    await openRepository(target).close()
    return
  }
  if (!isAbsolute(target)) throw new BackupError('INVALID_TARGET', `backup target ${target} is a relative path; pass an absolute path or an s3:// URL`)
  const existing = await nearestExisting(target)
  if (!existing.isDirectory) {
    throw new BackupError('INVALID_TARGET', `backup target ${target} is not a directory (${existing.path} is a file)`)
  }
  if (access === 'read') return
  await probeWritable(existing.path, target)
}

/** The path itself or its nearest ancestor that exists (a walk bounded by the path's depth). */
async function nearestExisting(path: string): Promise<{ path: string; isDirectory: boolean }> {
  let current = path
  for (;;) {
    try {
      const s = await stat(current)
      return { path: current, isDirectory: s.isDirectory() }
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new BackupError('TARGET_UNREACHABLE', `backup target ${path}: ${(cause as Error).message}`, { cause })
      const parent = dirname(current)
      if (parent === current) throw new BackupError('INVALID_TARGET', `backup target ${path}: no part of the path exists`)
      current = parent
    }
  }
}

/** Creates and removes a file in `dir` (the target itself, or where it would be made). */
async function probeWritable(dir: string, target: string): Promise<void> {
  const probe = join(dir, `.meshsync-probe-${randomBytes(6).toString('hex')}`)
  try {
    await (await open(probe, 'wx', 0o600)).close()
  } catch (cause) {
    const why = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message
    const where = dir === target ? target : `${dir} (where ${target} would be created)`
    throw new BackupError('INVALID_TARGET', `backup target ${target}: cannot write in ${where} (${why}); pass a writable directory`, { cause })
  }
  await rm(probe, { force: true })
}
