/**
 * The sets of a repository: their manifests, how a reference names one, and the chain each
 * needs. Reading a set's objects is its method's (entities-read.ts, files-read.ts).
 */
import { BackupError, corrupt } from './errors.ts'
import { BACKUP_FORMAT, type Manifest } from './format.ts'
import { checkFileList } from './files-read.ts'
import type { VerifyResult } from './read-types.ts'
import { MANIFEST, setKey, type BackupRepository } from './repository.ts'

export type { RestoredEntity, Scope, VerifyProblem, VerifyResult } from './read-types.ts'

/** A set's manifest, or BACKUP_NOT_FOUND / BACKUP_CORRUPT / UNSUPPORTED_FORMAT. */
export async function loadManifest(repo: BackupRepository, id: string): Promise<Manifest> {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) throw new BackupError('BACKUP_NOT_FOUND', `no backup ${id} in ${repo.location}`, { set: id })
  const bytes = await repo.get(setKey(id, MANIFEST))
  if (bytes === undefined) throw new BackupError('BACKUP_NOT_FOUND', `no backup ${id} in ${repo.location}`, { set: id })
  let manifest: Manifest
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes)) as Manifest
  } catch (cause) {
    throw corrupt(id, MANIFEST, 'not JSON', cause)
  }
  if (typeof manifest !== 'object' || manifest === null || typeof manifest.format !== 'number') throw corrupt(id, MANIFEST, 'no format version')
  if (manifest.format > BACKUP_FORMAT) {
    throw new BackupError('UNSUPPORTED_FORMAT', `backup ${id} has format ${manifest.format}; this meshsync reads up to ${BACKUP_FORMAT}`, { set: id, object: MANIFEST })
  }
  if (manifest.format < BACKUP_FORMAT) {
    throw new BackupError('UNSUPPORTED_FORMAT', `backup ${id} has format ${manifest.format}, a pre-release format this meshsync no longer reads; take a new full backup`, { set: id, object: MANIFEST })
  }
  if (
    manifest.id !== id ||
    !Array.isArray(manifest.chunks) ||
    typeof manifest.index !== 'object' ||
    manifest.index === null ||
    typeof manifest.feedSeq !== 'number' ||
    typeof manifest.vv !== 'object' ||
    manifest.vv === null ||
    typeof manifest.records !== 'number' ||
    manifest.chunks.reduce((n, c) => n + (typeof c?.records === 'number' ? c.records : Number.NaN), 0) !== manifest.records
  ) {
    throw corrupt(id, MANIFEST, 'malformed manifest')
  }
  if (manifest.method !== undefined) {
    if (manifest.method !== 'files' || manifest.type !== 'full' || manifest.parent !== null) throw corrupt(id, MANIFEST, 'malformed manifest')
    checkFileList(manifest)
  }
  return manifest
}

/** Every published set's manifest, oldest snapshot first; unreadable ones are returned apart. */
export async function listManifests(repo: BackupRepository): Promise<{ sets: Manifest[]; broken: { id: string; code: string; message: string }[] }> {
  const sets: Manifest[] = []
  const broken: { id: string; code: string; message: string }[] = []
  for (const id of await repo.listSets()) {
    try {
      sets.push(await loadManifest(repo, id))
    } catch (error) {
      if (!(error instanceof BackupError) || error.code === 'TARGET_UNREACHABLE') throw error
      broken.push({ id, code: error.code, message: error.message })
    }
  }
  return { sets: sets.sort(bySnapshot), broken }
}

/** Oldest snapshot first; ties by creation, then id. */
export function bySnapshot(a: Manifest, b: Manifest): number {
  return a.snapshotAt.localeCompare(b.snapshotAt) || a.created.localeCompare(b.created) || a.id.localeCompare(b.id)
}

/** Resolves `latest`, a full id or a unique id prefix to a set id. */
export async function resolveSetId(repo: BackupRepository, ref: string, node?: string): Promise<string> {
  const ids = await repo.listSets()
  if (ref === 'latest') {
    const { sets } = await listManifests(repo)
    const mine = node === undefined ? sets : sets.filter((m) => m.node === node)
    const last = mine.at(-1)
    if (!last) throw new BackupError('BACKUP_NOT_FOUND', `no backups in ${repo.location}`)
    return last.id
  }
  if (ids.includes(ref)) return ref
  const matches = ids.filter((id) => id.startsWith(ref))
  if (matches.length === 1) return matches[0] as string
  if (matches.length > 1) throw new BackupError('BACKUP_AMBIGUOUS', `${ref} matches ${matches.length} backups; give more of the id`, { set: ref })
  throw new BackupError('BACKUP_NOT_FOUND', `no backup ${ref} in ${repo.location}`, { set: ref })
}

/** The chain a set needs, oldest first (a full, then diffs); CHAIN_INCOMPLETE when a link is missing. */
export async function chainOf(repo: BackupRepository, manifest: Manifest): Promise<Manifest[]> {
  const chain: Manifest[] = [manifest]
  const seen = new Set([manifest.id])
  let current = manifest
  while (current.type !== 'full') {
    const parent = current.parent
    if (parent === null) throw corrupt(current.id, MANIFEST, `a ${current.type} backup without a parent`)
    if (seen.has(parent)) throw corrupt(current.id, MANIFEST, 'the chain loops')
    try {
      current = await loadManifest(repo, parent)
    } catch (cause) {
      if (cause instanceof BackupError && cause.code === 'BACKUP_NOT_FOUND') {
        throw new BackupError('CHAIN_INCOMPLETE', `backup ${manifest.id} needs ${parent}, which is missing from ${repo.location}`, { set: manifest.id, cause })
      }
      throw cause
    }
    seen.add(current.id)
    chain.unshift(current)
  }
  return chain
}

/** Throws BACKUP_CORRUPT naming the first bad object (and counting the others). */
export function assertVerified(result: VerifyResult): void {
  const first = result.problems[0]
  if (!first) return
  const more = result.problems.length > 1 ? ` (and ${result.problems.length - 1} more problems)` : ''
  throw new BackupError('BACKUP_CORRUPT', `${first.message}${more}`, { set: first.set, object: first.object })
}
