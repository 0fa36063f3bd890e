import { createHash } from 'node:crypto'
import type { VersionVector } from '../../crdt/index.ts'

/** Bytes of a state digest (what a link probe carries; transport/link-monitor.ts). */
export const STATE_DIGEST_BYTES = 8

/**
 * A short digest of a version vector: equal vectors give equal digests, so two nodes whose
 * digests match hold exactly the same changes and an anti-entropy session between them would
 * find nothing to repair (docs/architecture.md, Replication). 64 bits: a false match between two
 * different vectors is a 2^-64 chance per comparison, and it only delays a repair to the next
 * session the scheduler does not skip.
 */
export function vectorDigest(vv: VersionVector): Uint8Array {
  const hash = createHash('sha256')
  for (const origin of Object.keys(vv).sort()) hash.update(`${origin}:${vv[origin]};`)
  return new Uint8Array(hash.digest().subarray(0, STATE_DIGEST_BYTES))
}

/** The digest of a changing version vector, computed again only when the vector changes (vectors are immutable values). */
export class StateDigest {
  readonly #vector: () => VersionVector
  #of: VersionVector | undefined
  #digest: Uint8Array = new Uint8Array(STATE_DIGEST_BYTES)

  constructor(vector: () => VersionVector) {
    this.#vector = vector
  }

  current(): Uint8Array {
    const vv = this.#vector()
    if (vv !== this.#of) {
      this.#digest = vectorDigest(vv)
      this.#of = vv
    }
    return this.#digest
  }
}

/** True when two digests are the same bytes. */
export function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
