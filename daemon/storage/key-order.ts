/**
 * Key order of the storage layer: LevelDB compares keys as UTF-8 bytes. For well-formed strings
 * that is Unicode code-point order, which differs from JavaScript's `<` (UTF-16 code units) as
 * soon as an astral character (U+10000 and up, a surrogate pair) meets a character in
 * U+E000..U+FFFF: UTF-16 puts the astral one first, UTF-8 puts it last.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
const ANY_SURROGATE = /[\uD800-\uDFFF]/

/**
 * The key as LevelDB stores it: UTF-8 encoding replaces every lone surrogate with U+FFFD, so
 * `'\uD800'` and `'\uFFFD'` are the same key. Well-formed strings are returned unchanged.
 */
export function toStoredKey(key: string): string {
  return ANY_SURROGATE.test(key) ? key.replace(LONE_SURROGATE, '\uFFFD') : key
}

/**
 * Compares two well-formed strings in UTF-8 byte order (= code-point order), the order LevelDB
 * iterates in. Negative, zero or positive, like `Array.prototype.sort` expects.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        // Surrogates (astral code points) sort after U+E000..U+FFFF: move them to the top.
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000
      }
      return x < y ? -1 : 1
    }
  }
  return a.length < b.length ? -1 : 1
}

/** First index of `keys` (sorted in key order) whose key is >= `key`. */
export function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareKeys(keys[mid] as string, key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}
