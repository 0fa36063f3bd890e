/** The key range a scope of a walk or a restore covers (read-types.ts). */
import { compareKeys } from '../storage/key-order.ts'
import type { Scope } from './read-types.ts'

/** Key bounds [from, to) of a scope. */
export function scopeRange(scope: Scope): [string | undefined, string | undefined] {
  if (scope.ns === undefined) return [undefined, undefined]
  if (scope.id !== undefined) {
    const key = `${scope.ns}\u0000${scope.id}`
    return [key, `${key}\u0000`]
  }
  const prefix = scope.prefix ?? ''
  const base = `${scope.ns}\u0000${prefix}`
  // The end of a prefix: its last code unit bumped (ids are printable: no key falls between).
  const to = prefix === '' ? `${scope.ns}\u0001` : base.slice(0, -1) + String.fromCharCode(base.charCodeAt(base.length - 1) + 1)
  // `id \0` is the first key after `id` (no id holds U+0000).
  const after = scope.after !== undefined ? `${scope.ns}\u0000${scope.after}\u0000` : undefined
  return [after !== undefined && compareKeys(after, base) > 0 ? after : base, to]
}
