import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'

/** A raw classic-level database on a fresh temp dir: the baseline the daemon is measured against. */
export class RawLevel<V extends string | Uint8Array = string> {
  readonly db: ClassicLevel<string, V>
  readonly dir: string

  private constructor(db: ClassicLevel<string, V>, dir: string) {
    this.db = db
    this.dir = dir
  }

  /** Opens LevelDB with classic-level's defaults (as the daemon does), utf8 keys and values. */
  static open(baseDir: string): Promise<RawLevel<string>> {
    return RawLevel.#open<string>(baseDir, 'utf8')
  }

  /** The same with byte values (the daemon's own entries, written again as they are). */
  static openBytes(baseDir: string): Promise<RawLevel<Uint8Array>> {
    return RawLevel.#open<Uint8Array>(baseDir, 'view')
  }

  static async #open<T extends string | Uint8Array>(baseDir: string, valueEncoding: 'utf8' | 'view'): Promise<RawLevel<T>> {
    const dir = await mkdtemp(join(baseDir, 'classic-level-bench-'))
    const db = new ClassicLevel<string, T>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding })
    await db.open()
    return new RawLevel(db, dir)
  }

  /** Number of keys in a range (read back through an iterator). */
  async count(range: { gte: string; lt: string }): Promise<number> {
    let n = 0
    for await (const _key of this.db.keys(range)) n++
    return n
  }

  /** Number of keys starting with `prefix`. */
  countPrefix(prefix: string): Promise<number> {
    return this.count({ gte: prefix, lt: `${prefix}\uffff` })
  }

  async destroy(): Promise<void> {
    await this.db.close()
    await rm(this.dir, { recursive: true, force: true })
  }
}
