/**
 * The pure data model of meshsync: version vectors, entity documents on Yjs, change records and
 * their codec, causal heads and conflict detection. No I/O.
 */
export * from './errors.ts'
export * from './names.ts'
export * from './version-vector.ts'
export * from './change-record.ts'
export * from './change-codec.ts'
export * from './causality.ts'
export * from './conflicts.ts'
export * from './entity-doc.ts'
export * from './fresh-record.ts'
export * from './entity-snapshot.ts'
export * from './field-heads.ts'
export * from './incarnation.ts'
export * from './pooled-encoder.ts'
export * from './written-fields.ts'
