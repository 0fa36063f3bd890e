import type { BackupRepository, RepoCallOptions, SetWriter } from '../../daemon/backup/repository.ts'

/**
 * A repository that forwards every call to another one, with hooks the tests use to inject
 * faults or to hold an operation in the middle (`before(call, key)` runs first and may throw or
 * wait).
 */
export class HookedRepository implements BackupRepository {
  readonly location: string
  readonly #inner: BackupRepository
  before: (call: 'get' | 'put' | 'delete' | 'deleteSet', key: string) => Promise<void> | void = () => undefined

  constructor(inner: BackupRepository) {
    this.#inner = inner
    this.location = inner.location
  }

  async get(key: string, options?: RepoCallOptions): Promise<Uint8Array | undefined> {
    await this.before('get', key)
    return this.#inner.get(key, options)
  }

  async put(key: string, bytes: Uint8Array, options?: RepoCallOptions): Promise<void> {
    await this.before('put', key)
    return this.#inner.put(key, bytes, options)
  }

  list(prefix: string, options?: RepoCallOptions): Promise<string[]> {
    return this.#inner.list(prefix, options)
  }

  async delete(key: string, options?: RepoCallOptions): Promise<void> {
    await this.before('delete', key)
    return this.#inner.delete(key, options)
  }

  listSets(options?: RepoCallOptions): Promise<string[]> {
    return this.#inner.listSets(options)
  }

  beginSet(id: string, options?: RepoCallOptions): Promise<SetWriter> {
    return this.#inner.beginSet(id, options)
  }

  async deleteSet(id: string, options?: RepoCallOptions): Promise<void> {
    await this.before('deleteSet', id)
    return this.#inner.deleteSet(id, options)
  }

  removeDebris(options?: RepoCallOptions): Promise<number> {
    return this.#inner.removeDebris(options)
  }

  close(): Promise<void> {
    return this.#inner.close()
  }
}
