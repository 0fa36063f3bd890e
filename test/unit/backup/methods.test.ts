import { describe, expect, it } from 'vitest'
import type { BackupType, Manifest } from '../../../daemon/backup/format.ts'
import { BACKUP_METHODS, backupMethod, DEFAULT_METHOD, methodOf } from '../../../daemon/backup/methods.ts'

const TYPES: readonly BackupType[] = ['full', 'incremental', 'differential']
const manifest = (fields: Partial<Manifest>): Manifest => fields as Manifest

describe('backup methods', () => {
  it('are named as the API, the CLI and the config name them; a backup that names none takes entities', () => {
    expect(Object.keys(BACKUP_METHODS)).toEqual(['entities', 'files'])
    for (const [name, method] of Object.entries(BACKUP_METHODS)) expect(method.name).toBe(name)
    expect(DEFAULT_METHOD).toBe('entities')
  })

  it("are a set's own: a manifest without a method holds entity records", () => {
    expect(methodOf(manifest({ type: 'incremental' }))).toBe(backupMethod('entities'))
    expect(methodOf(manifest({ type: 'full', method: 'files', files: [] }))).toBe(backupMethod('files'))
  })

  it('take the types they can: entities any, files a full only (FILES_BACKUP_FULL_ONLY), with the default the CLI uses', () => {
    for (const type of TYPES) expect(() => backupMethod('entities').checkType(type)).not.toThrow()
    expect(() => backupMethod('files').checkType('full')).not.toThrow()
    for (const type of ['incremental', 'differential'] as const) expect(() => backupMethod('files').checkType(type)).toThrow(expect.objectContaining({ code: 'FILES_BACKUP_FULL_ONLY' }))
    expect(backupMethod('entities').defaultType).toBe('incremental')
    expect(backupMethod('files').defaultType).toBe('full')
  })

  it('name the kind of a set as `backup list` shows it', () => {
    const entities = backupMethod('entities')
    expect(TYPES.map((type) => entities.kindOf({ type, synthetic: false }))).toEqual(['full', 'incremental', 'differential'])
    expect(entities.kindOf({ type: 'full', synthetic: true })).toBe('full*')
    expect(backupMethod('files').kindOf({ type: 'full', synthetic: false })).toBe('full files')
  })
})
