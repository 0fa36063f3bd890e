/**
 * Reading a files set (format.ts, `method: 'files'`): the node's LevelDB files as of the set's
 * snapshot, their bytes one after another in its chunks. The files are written back as they were (a restore
 * into a new data dir), read back and checked (verify), or unpacked into a scratch directory and
 * read there as a store, so that whatever reads entities from a chain (a live or scoped restore,
 * a synthetic full) reads a files set too.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CodecError } from '../../crdt/index.ts'
import { dataDirLayout, type InitResult } from '../data-dir.ts'
import { makeDirs } from '../make-dirs.ts'
import { LEVELDB_FILE_NAME, LevelKvStore } from '../storage/level-kv-store.ts'
import { compareKeys } from '../storage/key-order.ts'
import { SnapshotView, splitEntityKey } from '../store/snapshot-view.ts'
import { scopeRange } from './scope.ts'
import { BackupError, corrupt } from './errors.ts'
import { parseMeta, type Manifest, type SetFile } from './format.ts'
import { readObject } from './objects.ts'
import type { RestoreDirResult, RestoredEntity, Scope, VerifyResult } from './read-types.ts'
import type { BackupRepository } from './repository.ts'
import type { Sealer } from './seal.ts'

/** Chunks read (fetched, checked, decrypted, decompressed) ahead of the one being written. */
const READ_AHEAD = 3

/** Checks the file list of a files set's manifest; throws BACKUP_CORRUPT. */
export function checkFileList(m: Manifest): void {
  const files = m.files
  if (!Array.isArray(files)) throw corrupt(m.id, 'manifest.json', 'a files set without its files')
  const names = new Set<string>()
  for (const f of files as readonly SetFile[]) {
    // Only LevelDB's own names: anything else (a path) would be written outside the database.
    if (typeof f?.name !== 'string' || !LEVELDB_FILE_NAME.test(f.name) || names.has(f.name)) throw corrupt(m.id, 'manifest.json', `not a database file name: ${JSON.stringify(f?.name)}`)
    if (!Number.isSafeInteger(f.size) || f.size < 0 || typeof f.sha256 !== 'string') throw corrupt(m.id, 'manifest.json', `malformed entry of ${f.name}`)
    names.add(f.name)
  }
}

/**
 * Each file's bytes in order, a piece at a time, as the chunks hold them one after another (up
 * to {@link READ_AHEAD} chunks read ahead); the chunks must hold exactly the files' bytes. Every
 * chunk is checked against its SHA-256 as stored (objects.ts), which fixes every byte of the
 * files; `checkFiles` also checks each file's own SHA-256, taken from the node's file at backup
 * time, before its last piece is handed out (an end-to-end check of cutting and joining: verify).
 */
async function* fileParts(repo: BackupRepository, sealer: Sealer, m: Manifest, checkFiles: boolean): AsyncGenerator<{ file: SetFile; bytes: Uint8Array }> {
  checkFileList(m)
  const reads: Promise<Uint8Array>[] = []
  let started = 0
  const nextChunk = (): Promise<Uint8Array> | undefined => {
    while (started < m.chunks.length && reads.length <= READ_AHEAD) {
      const read = readObject(repo, sealer, m.id, m.chunks[started++] as Manifest['chunks'][number])
      read.catch(() => undefined) // awaited in turn; never an unhandled rejection
      reads.push(read)
    }
    return reads.shift()
  }
  let chunk: Uint8Array = new Uint8Array(0)
  let at = 0
  let chunkName = ''
  let read = 0
  for (const file of m.files as readonly SetFile[]) {
    const hash = createHash('sha256')
    let left = file.size
    while (left > 0) {
      if (at === chunk.length) {
        const next = nextChunk()
        if (!next) throw corrupt(m.id, file.name, `the chunks end ${left} bytes before the file does`)
        chunkName = (m.chunks[read++] as { name: string }).name
        chunk = await next
        at = 0
        if (chunk.length === 0) throw corrupt(m.id, chunkName, 'an empty chunk')
      }
      const bytes = chunk.subarray(at, at + Math.min(left, chunk.length - at))
      at += bytes.length
      left -= bytes.length
      if (checkFiles) {
        hash.update(bytes)
        if (left === 0 && hash.digest('hex') !== file.sha256) throw corrupt(m.id, file.name, 'SHA-256 of the file does not match')
      }
      yield { file, bytes }
    }
    if (checkFiles && file.size === 0 && hash.digest('hex') !== file.sha256) throw corrupt(m.id, file.name, 'SHA-256 of the file does not match')
  }
  if (at !== chunk.length || read !== m.chunks.length) throw corrupt(m.id, chunkName || 'manifest.json', 'the chunks hold more bytes than the files')
}

/**
 * Writes a files set's files into `dir` (created if absent; it must not hold them yet), every
 * chunk checked, and with `checkFiles` every file (see {@link fileParts}); `sync` makes the files
 * and the directory durable. Resolves with the bytes written.
 */
export async function unpackFiles(repo: BackupRepository, sealer: Sealer, m: Manifest, dir: string, options: { sync: boolean; checkFiles: boolean }): Promise<number> {
  await makeDirs(dir)
  // Each file is synced (when asked) and closed as soon as it is written, while the next ones are.
  const finishing: Promise<void>[] = []
  const finish = (h: FileHandle): void => {
    const done = (options.sync ? h.sync() : Promise.resolve()).finally(() => h.close())
    done.catch(() => undefined) // awaited below; never an unhandled rejection
    finishing.push(done)
  }
  let handle: FileHandle | undefined
  let current: SetFile | undefined
  let bytes = 0
  try {
    for (const f of m.files ?? []) if (f.size === 0) finish(await open(join(dir, f.name), 'wx'))
    for await (const part of fileParts(repo, sealer, m, options.checkFiles)) {
      if (part.file !== current) {
        if (handle) finish(handle)
        handle = undefined
        current = part.file
        handle = await open(join(dir, current.name), 'wx')
      }
      let at = 0
      while (at < part.bytes.length) at += (await (handle as FileHandle).write(part.bytes, at)).bytesWritten
      bytes += part.bytes.length
    }
    if (handle) finish(handle)
    handle = undefined
    await Promise.all(finishing)
  } finally {
    await handle?.close().catch(() => undefined)
    await Promise.allSettled(finishing)
  }
  if (options.sync) {
    const d = await open(dir, 'r')
    try {
      await d.sync()
    } finally {
      await d.close()
    }
  }
  return bytes
}

/**
 * Verify of a files set: reads back every object (size, SHA-256, decryption, decompression) and
 * checks every file against its size and SHA-256. `deep` also opens the files as a database and
 * reads every entity (meta parsed), which must number what the manifest says.
 */
export async function verifyFilesSet(repo: BackupRepository, sealer: Sealer, m: Manifest, options: { deep?: boolean; onProgress?: (p: { set: string; object: string; done: number; total: number }) => void } = {}): Promise<VerifyResult> {
  let objects = 0
  let bytes = 0
  let records = 0
  const problems: VerifyResult['problems'][number][] = []
  try {
    await readObject(repo, sealer, m.id, m.index)
    objects++
    bytes += m.index.size
    if (options.deep) {
      // Every entity parsed, and their number checked against the manifest, as a restore reads them.
      for await (const _ of materializeFiles(repo, sealer, m)) records++
    } else {
      const files = m.files ?? []
      let last: SetFile | undefined
      let done = 0
      for await (const part of fileParts(repo, sealer, m, true)) {
        if (part.file === last) continue
        last = part.file
        options.onProgress?.({ set: m.id, object: last.name, done: ++done, total: files.length })
      }
    }
    objects += m.chunks.length
    bytes += m.chunks.reduce((n, c) => n + c.size, 0)
  } catch (error) {
    if (!(error instanceof BackupError) || error.code !== 'BACKUP_CORRUPT') throw error
    problems.push({ set: error.set ?? m.id, object: error.object ?? 'manifest.json', code: error.code, message: error.message })
  }
  return { id: m.id, ok: problems.length === 0, chain: [m.id], objects, records, diffs: 0, bytes, problems }
}

/**
 * The entities of a files set in `scope`, in key order, as stored (meta bytes kept): its files
 * are unpacked into a scratch directory (removed afterwards) and read as a store. Unscoped, the
 * entities must number what the manifest says.
 */
export async function* materializeFiles(repo: BackupRepository, sealer: Sealer, m: Manifest, scope: Scope = {}): AsyncGenerator<RestoredEntity> {
  const unpacked = await Unpacked.open(repo, sealer, m)
  try {
    let count = 0
    const [from, to] = scopeRange(scope)
    for await (const batch of unpacked.view.rawEntities(scope.ns === undefined ? {} : { ns: scope.ns })) {
      for (const e of batch) {
        if ((from !== undefined && compareKeys(e.key, from) < 0) || (to !== undefined && compareKeys(e.key, to) >= 0)) continue
        count++
        yield entityOf(m, e.key, e.meta, e.state)
      }
    }
    if (scope.ns === undefined && count !== m.entities) throw corrupt(m.id, 'manifest.json', `the files hold ${count} entities, the manifest ${m.entities}`)
  } finally {
    await unpacked.close()
  }
}

/** A files set unpacked into a scratch directory and opened as a store, with a view of it. */
export class Unpacked {
  readonly view: SnapshotView
  readonly #kv: LevelKvStore
  readonly #dir: string

  private constructor(dir: string, kv: LevelKvStore, view: SnapshotView) {
    this.#dir = dir
    this.#kv = kv
    this.view = view
  }

  static async open(repo: BackupRepository, sealer: Sealer, m: Manifest): Promise<Unpacked> {
    const dir = await mkdtemp(join(tmpdir(), 'meshsync-files-'))
    let kv: LevelKvStore | undefined
    try {
      await unpackFiles(repo, sealer, m, join(dir, 'db'), { sync: false, checkFiles: true })
      kv = await openUnpacked(m, join(dir, 'db'))
      return new Unpacked(dir, kv, await SnapshotView.open(kv.snapshot()))
    } catch (error) {
      await kv?.close().catch(() => undefined)
      await rm(dir, { recursive: true, force: true })
      throw error
    }
  }

  /** Closes the store and removes the directory. */
  async close(): Promise<void> {
    await this.view.close().catch(() => undefined)
    await this.#kv.close().catch(() => undefined)
    await rm(this.#dir, { recursive: true, force: true })
  }
}

/**
 * Opens a files set's unpacked files as a database; files that match their chunks but do not
 * open (a table the manifest names is missing, say) make the set BACKUP_CORRUPT.
 */
export async function openUnpacked(m: Manifest, location: string): Promise<LevelKvStore> {
  const kv = new LevelKvStore(location)
  try {
    await kv.open()
  } catch (cause) {
    await kv.close().catch(() => undefined)
    throw corrupt(m.id, 'manifest.json', 'its files do not open as a database', cause)
  }
  return kv
}

function entityOf(m: Manifest, key: string, meta: Uint8Array, state: Uint8Array): RestoredEntity {
  const { ns, id } = splitEntityKey(key)
  try {
    return { ns, id, meta: parseMeta(meta), metaBytes: meta, state }
  } catch (cause) {
    if (cause instanceof CodecError) throw corrupt(m.id, 'manifest.json', `${ns}/${id}: ${cause.message}`, cause)
    throw cause
  }
}

/**
 * A files set into a new data dir: its files as they were, every chunk checked against its
 * SHA-256, made durable, then opened once (LevelDB's recovery checks every table file the manifest names
 * is there). The node's store comes back whole: its change log, feed and vector, and the Yjs
 * client ids it used, which the new identity's store never takes again.
 */
export async function restoreFiles(repo: BackupRepository, sealer: Sealer, manifest: Manifest, into: string, init: () => Promise<InitResult>): Promise<RestoreDirResult> {
  const db = dataDirLayout(into).db
  await makeDirs(into, 0o700) // before the files make it with a wider mode
  // The data dir's keys are made while the files are written (each settles before a failure is
  // passed on, so that nothing is still writing when the directory is removed). Every chunk's
  // SHA-256 is checked as it is read; each file's own (a second pass over every byte, a fifth of
  // the time here) is left to verify.
  const [made, unpacked] = await Promise.allSettled([init(), unpackFiles(repo, sealer, manifest, db, { sync: true, checkFiles: false })])
  if (unpacked.status === 'rejected') throw unpacked.reason
  if (made.status === 'rejected') throw made.reason
  await (await openUnpacked(manifest, db)).close()
  const deleted = Object.values(manifest.namespaces).reduce((n, c) => n + c.deleted, 0)
  return { backup: manifest.id, into, nodeId: made.value.identity.nodeId, entities: manifest.entities, deleted }
}
