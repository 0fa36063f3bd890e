import * as encoding from 'lib0/encoding'

/** Size of the reused encoder's buffer; a larger encoding grows it once and gets a new one after. */
const POOL_BYTES = 64 * 1024

const pooled = encoding.createEncoder()
pooled.cbuf = new Uint8Array(POOL_BYTES)
let inUse = false

/**
 * `encoding.encode(write)` on one reused lib0 encoder: a fresh encoder starts with a 100-byte
 * buffer and grows through more (a change record is ~200 bytes), each a typed array with its own
 * backing store, which cost more than the writing itself on the hot paths (a change record and a
 * new entity's update per write). The bytes returned are a copy, owned by the caller. A nested
 * call (from inside `write`) takes a fresh encoder.
 */
export function encodeReusing(write: (encoder: encoding.Encoder) => void): Uint8Array {
  if (inUse) return encoding.encode(write)
  inUse = true
  try {
    write(pooled)
    return encoding.toUint8Array(pooled)
  } finally {
    pooled.cpos = 0
    pooled.bufs.length = 0
    if (pooled.cbuf.length !== POOL_BYTES) pooled.cbuf = new Uint8Array(POOL_BYTES)
    inUse = false
  }
}
