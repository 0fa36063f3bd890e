import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { createEntityDoc, DATA_ROOT, fieldWrites, type JsonValue } from '../../../crdt/index.ts'

/** One edit of the record: set or remove some fields, in one transaction. */
const editArb = fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.option(fc.oneof(fc.integer(), fc.string(), fc.array(fc.boolean(), { maxLength: 2 }), fc.constant({ x: [1] } as JsonValue)), { nil: null })), {
  minLength: 1,
  maxLength: 4,
})

describe('fieldWrites', () => {
  it('reads back the value each update wrote to each field (null: removed), given the document that holds its items', () => {
    fc.assert(
      fc.property(fc.array(editArb, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 2 ** 31 }), (edits, client) => {
        const doc = createEntityDoc(undefined, client)
        const data = doc.getMap(DATA_ROOT)
        const made: { update: Uint8Array; written: Record<string, JsonValue | null> }[] = []
        for (const edit of edits) {
          const written: Record<string, JsonValue | null> = {}
          let update: Uint8Array | undefined
          const onUpdate = (u: Uint8Array): void => {
            update = u
          }
          doc.on('update', onUpdate)
          doc.transact(() => {
            for (const [field, value] of edit) {
              if (value === null) {
                if (!data.has(field)) continue
                data.delete(field)
              } else data.set(field, value)
              written[field] = value
            }
          })
          doc.off('update', onUpdate)
          if (update !== undefined) made.push({ update, written })
        }
        for (const { update, written } of made) {
          const fields = Object.keys(written).sort()
          // With the document: every value, exactly.
          expect(fieldWrites(update, fields, doc)).toEqual({ values: written, unknown: [] })
          // Without it: what the update names alone, never a wrong value.
          const bare = fieldWrites(update, fields, undefined)
          for (const [field, value] of Object.entries(bare.values)) expect(value).toEqual(written[field])
          expect([...Object.keys(bare.values), ...bare.unknown].sort()).toEqual(fields)
        }
      }),
      { numRuns: 150 },
    )
  })

  it('calls a field unknown when its item is in neither the update nor the document given', () => {
    const doc = createEntityDoc(undefined, 7)
    doc.getMap(DATA_ROOT).set('a', 1)
    let update: Uint8Array = new Uint8Array(0)
    doc.on('update', (u: Uint8Array) => (update = u))
    doc.getMap(DATA_ROOT).set('a', 2) // replaces an item: the update does not name the key
    expect(fieldWrites(update, ['a'], doc)).toEqual({ values: { a: 2 }, unknown: [] })
    expect(fieldWrites(update, ['a'], createEntityDoc())).toEqual({ values: {}, unknown: ['a'] })
    expect(fieldWrites(update, ['a'], undefined)).toEqual({ values: {}, unknown: ['a'] })
    // A text edit is not a field.
    const other = createEntityDoc(undefined, 8)
    let textUpdate: Uint8Array = new Uint8Array(0)
    other.on('update', (u: Uint8Array) => (textUpdate = u))
    other.getText('body').insert(0, 'hi')
    expect(fieldWrites(textUpdate, [], other)).toEqual({ values: {}, unknown: [] })
    expect(Y.decodeUpdate(textUpdate).structs.length).toBeGreaterThan(0)
  })
})
