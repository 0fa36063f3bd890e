import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'

/** A raw classic-level database on a fresh temp dir: the baseline the daemon is measured against. */
export class RawLevel {
  readonly db: ClassicLevel<string, string>
  readonly dir: string

  private constructor(db: ClassicLevel<string, string>, dir: string) {
    this.db = db
    this.dir = dir
  }

  /** Opens LevelDB with classic-level's defaults (as the daemon does), utf8 keys and values. */
  static async open(baseDir: string): Promise<RawLevel> {
    const dir = await mkdtemp(join(baseDir, 'classic-level-bench-'))
    const db = new ClassicLevel<string, string>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    await db.open()
    return new RawLevel(db, dir)
  }

  /** Number of keys starting with `prefix` (read back through an iterator). */
  async countPrefix(prefix: string): Promise<number> {
    let n = 0
    for await (const _key of this.db.keys({ gte: prefix, lt: `${prefix}\uffff` })) n++
    return n
  }

  async destroy(): Promise<void> {
    await this.db.close()
    await rm(this.dir, { recursive: true, force: true })
  }
}
