/**
 * The database's pages shared by followers (src/edge/EventPages.ts): a whole page is read once
 * for every asker, at once or later, and its events are the same objects for all; a page that is
 * not whole, or whose read failed, is read by each asker for itself; at most `capacity` pages are kept.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { EventPages } from "../../src/edge/EventPages.js"
import type { StoredEvent } from "../../src/store/Runs.js"

const rows = (from: number, to: number): ReadonlyArray<StoredEvent> =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, tag: "DecisionMade", body: `{"seq":${from + i}}` }))

/** A page's read, counted. */
const counted = (page: () => ReadonlyArray<StoredEvent>) => {
  let loads = 0
  return { load: Effect.sync(() => (loads++, page())), loads: () => loads }
}

describe("EventPages", () => {
  it.effect("a whole page is read once, for the askers at once and later: its events are the same objects for all", () =>
    Effect.gen(function*() {
      const pages = new EventPages(4)
      const gate = yield* Deferred.make<void>()
      const { load, loads } = counted(() => rows(11, 20))
      const held = Effect.zipRight(Deferred.await(gate), load)
      const first = yield* Effect.fork(pages.read("r", 1, 10, held))
      const second = yield* Effect.fork(pages.read("r", 1, 10, held))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      const a = yield* Fiber.join(first)
      const b = yield* Fiber.join(second)
      const c = yield* pages.read("r", 1, 10, held)
      expect(loads()).toBe(1)
      expect(a.map((e) => e.seq)).toEqual(rows(11, 20).map((r) => r.seq))
      a.forEach((e, i) => {
        expect(b[i]).toBe(e)
        expect(c[i]).toBe(e)
      })
      // Another run's page, or another page size, is another page.
      yield* pages.read("s", 1, 10, load)
      yield* pages.read("r", 1, 5, Effect.sync(() => rows(6, 10)))
      expect(loads()).toBe(2)
    }))

  it.effect("a page that is not whole (the run's latest) is read by each asker for itself", () =>
    Effect.gen(function*() {
      const pages = new EventPages(4)
      const gate = yield* Deferred.make<void>()
      const { load, loads } = counted(() => rows(21, 23))
      const held = Effect.zipRight(Deferred.await(gate), load)
      const first = yield* Effect.fork(pages.read("r", 2, 10, held))
      const second = yield* Effect.fork(pages.read("r", 2, 10, held))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      yield* pages.read("r", 2, 10, held)
      expect(loads()).toBe(3)
      expect(pages.size).toBe(0)
    }))

  it.effect("a read that fails is no one's: the asker gets its failure, the next reads again", () =>
    Effect.gen(function*() {
      const pages = new EventPages(4)
      const failed = yield* Effect.exit(pages.read("r", 0, 10, Effect.fail("database away")))
      expect(failed).toEqual(Exit.fail("database away"))
      const { load, loads } = counted(() => rows(1, 10))
      expect((yield* pages.read("r", 0, 10, load)).length).toBe(10)
      expect(loads()).toBe(1)
    }))

  it.effect("at most `capacity` pages are kept: the one used longest ago goes first", () =>
    Effect.gen(function*() {
      const pages = new EventPages(2)
      const page = (index: number) => counted(() => rows(index * 10 + 1, index * 10 + 10))
      const p0 = page(0)
      const p1 = page(1)
      const p2 = page(2)
      yield* pages.read("r", 0, 10, p0.load)
      yield* pages.read("r", 1, 10, p1.load)
      yield* pages.read("r", 0, 10, p0.load)
      yield* pages.read("r", 2, 10, p2.load)
      expect(pages.size).toBe(2)
      // Page 1 went; page 0, used since, stayed.
      yield* pages.read("r", 0, 10, p0.load)
      yield* pages.read("r", 1, 10, p1.load)
      expect([p0.loads(), p1.loads(), p2.loads()]).toEqual([1, 2, 1])
    }))
})
