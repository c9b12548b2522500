/**
 * The in-memory answer cache's bookkeeping around `peek`: a cached round peeks at its answer and
 * then records it (`get`), which reuses the peeked entry instead of looking the key up again. The
 * reuse must never hand out an entry the cache no longer holds as it was peeked.
 */
import { describe, expect, it } from "@effect/vitest"
import { type CachedAnswer, MemoryCache } from "../../src/llm/AnswerCache.js"

const answer = (content: string): CachedAnswer => ({ content, toolCalls: [], tokensIn: 1, tokensOut: 1 })

describe("MemoryCache peek then get", () => {
  it("counts one hit, no miss, and makes the entry the most recently used", () => {
    const cache = new MemoryCache(2, () => 0)
    cache.set("a", answer("A"), 1_000)
    cache.set("b", answer("B"), 1_000)
    expect(cache.peek("a")?.content).toBe("A")
    expect(cache.get("a")?.content).toBe("A")
    expect(cache.stats).toEqual({ hits: 1, misses: 0, entries: 2 })
    // "a" was used last: a third entry evicts "b".
    cache.set("c", answer("C"), 1_000)
    expect(cache.peek("b")).toBeUndefined()
    expect(cache.peek("a")?.content).toBe("A")
  })

  it("gets what a set between the peek and the get left, not the entry peeked", () => {
    const cache = new MemoryCache(10, () => 0)
    cache.set("a", answer("old"), 1_000)
    expect(cache.peek("a")?.content).toBe("old")
    cache.set("a", answer("new"), 1_000)
    expect(cache.get("a")?.content).toBe("new")
  })

  it("a key peeked as absent and set since is a hit", () => {
    const cache = new MemoryCache(10, () => 0)
    expect(cache.peek("a")).toBeUndefined()
    cache.set("a", answer("A"), 1_000)
    expect(cache.get("a")?.content).toBe("A")
    expect(cache.stats).toEqual({ hits: 1, misses: 0, entries: 1 })
  })

  it("an entry peeked live and expired by the get is a miss, and is dropped", () => {
    let now = 0
    const cache = new MemoryCache(10, () => now)
    cache.set("a", answer("A"), 1_000)
    expect(cache.peek("a")?.content).toBe("A")
    now = 1_000
    expect(cache.get("a")).toBeUndefined()
    expect(cache.stats).toEqual({ hits: 0, misses: 1, entries: 0 })
  })

  it("a get of another key in between: the peeked key is looked up again", () => {
    const cache = new MemoryCache(1, () => 0)
    cache.set("a", answer("A"), 1_000)
    expect(cache.peek("a")?.content).toBe("A")
    expect(cache.get("b")).toBeUndefined()
    expect(cache.get("a")?.content).toBe("A")
    expect(cache.stats).toEqual({ hits: 1, misses: 1, entries: 1 })
  })
})
