import { createHash } from 'node:crypto'
import type { VersionVector } from '../../crdt/index.ts'
import { DIGEST_BYTES } from '../../transport/index.ts'

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
  return new Uint8Array(hash.digest().subarray(0, DIGEST_BYTES))
}

/** The digest of a changing version vector, computed again only when the vector changes (vectors are immutable values). */
export class StateDigest {
  readonly #vector: () => VersionVector
  #of: VersionVector | undefined
  #digest: Uint8Array = new Uint8Array(DIGEST_BYTES)

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
