/**
 * Whole pages of runs' committed events, shared by the followers that read them (Follow.ts): pages
 * aligned on their size (page k of size n: events k·n+1 … (k+1)·n), read from the database once
 * however many followers ask for one at once, and kept for the next ones (the `capacity` pages used
 * last). 500 SSE clients back from an overflow read the same stretch of the run: each used to read
 * and parse it, and the server encoded each event's frame once a client; shared, a page is read
 * once and its events are the same objects for every client, their frames encoded once (Sse.ts).
 *
 * A committed event never changes, so a whole page is true for good. A page that is not whole
 * (the run's latest, still filling) is no one's to share: each asker reads it for itself, as it
 * would without the pages, so that what it is given is never older than its asking.
 */
import { Deferred, Effect, Exit, FiberId, Option } from "effect"
import type { BusEvent } from "../bus/EventBus.js"
import type { StoredEvent } from "../store/Runs.js"

export class EventPages {
  /** By `run:size:index`, in the order they were last used (the first is evicted first). */
  private readonly pages = new Map<string, Deferred.Deferred<Option.Option<ReadonlyArray<BusEvent>>>>()

  constructor(readonly capacity: number) {}

  /** Pages kept (or being read) now. */
  get size(): number {
    return this.pages.size
  }

  /**
   * Page `index` of `run` in pages of `size`, as `load` reads it (the events after `index · size`
   * up to and including `(index + 1) · size`, in order). A whole page comes from a read shared with
   * the other askers; any other is `load`'s for this asker alone.
   */
  read<E, R>(
    run: string,
    index: number,
    size: number,
    load: Effect.Effect<ReadonlyArray<StoredEvent>, E, R>
  ): Effect.Effect<ReadonlyArray<BusEvent>, E, R> {
    const alone = Effect.map(load, (rows) => rows.map(fromRow))
    return Effect.suspend(() => {
      const key = `${run}:${size}:${index}`
      const known = this.pages.get(key)
      if (known !== undefined) {
        this.pages.delete(key)
        this.pages.set(key, known)
        // Not whole, or its read failed or was cut short: read it alone.
        return Effect.flatMap(Deferred.await(known), Option.match({ onNone: () => alone, onSome: Effect.succeed }))
      }
      const page = Deferred.unsafeMake<Option.Option<ReadonlyArray<BusEvent>>>(FiberId.none)
      this.pages.set(key, page)
      for (const oldest of this.pages.keys()) {
        if (this.pages.size <= this.capacity) break
        this.pages.delete(oldest)
      }
      return Effect.onExit(alone, (exit) =>
        Effect.suspend(() => {
          const whole = Exit.isSuccess(exit) && exit.value.length === size ? Option.some(exit.value) : Option.none()
          if (Option.isNone(whole) && this.pages.get(key) === page) this.pages.delete(key)
          return Deferred.succeed(page, whole)
        }))
    })
  }
}

const fromRow = (row: StoredEvent): BusEvent => ({ seq: row.seq, tag: row.tag, json: row.body })
