/**
 * A binary min-heap whose items know their index, so any item can be removed in O(log n) — what
 * deadlines need (a reply or an interruption cancels its deadline). Used by the ask deadlines and
 * the virtual clock of backtests.
 */
export interface HeapItem {
  /** Position in the heap; -1 once removed. */
  index: number
}

export class IndexedHeap<T extends HeapItem> {
  private readonly items: Array<T> = []

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length
  }

  peek(): T | undefined {
    return this.items[0]
  }

  push(item: T): void {
    item.index = this.items.length
    this.items.push(item)
    this.up(item.index)
  }

  /** Remove `item` if it is still in the heap; returns whether it was. */
  remove(item: T): boolean {
    const i = item.index
    if (i < 0) return false
    item.index = -1
    const last = this.items.pop()!
    if (i < this.items.length) {
      this.items[i] = last
      last.index = i
      this.down(i)
      this.up(last.index)
    }
    return true
  }

  private up(i: number): void {
    const items = this.items
    const item = items[i]!
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.before(item, items[parent]!)) break
      items[i] = items[parent]!
      items[i]!.index = i
      i = parent
    }
    items[i] = item
    item.index = i
  }

  private down(i: number): void {
    const items = this.items
    const n = items.length
    const item = items[i]!
    while (true) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && this.before(items[right]!, items[left]!) ? right : left
      if (!this.before(items[child]!, item)) break
      items[i] = items[child]!
      items[i]!.index = i
      i = child
    }
    items[i] = item
    item.index = i
  }
}
