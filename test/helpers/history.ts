import type { EntityStore, HistoryItem } from '../../daemon/store/entity-store.ts'

/** Every item of an entity's history, following its pages of `pageSize`. */
export async function allHistory(store: EntityStore, ns: string, id: string, pageSize = 100): Promise<HistoryItem[]> {
  const items: HistoryItem[] = []
  let after: string | undefined
  for (;;) {
    const page = await store.history(ns, id, { limit: pageSize, after })
    items.push(...page.items)
    if (page.next === undefined) return items
    after = page.next
  }
}
