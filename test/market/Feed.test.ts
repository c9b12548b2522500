import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, FastCheck } from "effect"
import { createHash } from "node:crypto"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import type { Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import * as Csv from "../../src/market/Csv.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"

const sym = (s: string) => s as Symbol
const bar = (symbol: string, ts: number, close = 10): Bar => ({
  symbol: sym(symbol),
  ts: ts as Timestamp,
  open: close,
  high: close,
  low: close,
  close,
  volume: 100
})
const seriesOf = (symbol: string, times: ReadonlyArray<number>) => times.map((ts) => bar(symbol, ts, ts))
const barsOf = (entries: Record<string, ReadonlyArray<number>>): Csv.Bars =>
  new Map(Object.entries(entries).map(([s, times]) => [sym(s), seriesOf(s, times)]))

/** What a feed delivers, as [ts, symbols at ts] pairs. */
const shape = (feed: Feed.Feed) => [...feed].map((slice) => [slice.ts, slice.bars.map((b) => b.symbol).join(",")])

/** The slices by definition: every bar grouped by time, times ascending, each group sorted by symbol. */
const reference = (bars: Csv.Bars): Array<Feed.Slice> => {
  const byTs = new Map<number, Array<Bar>>()
  for (const series of bars.values()) for (const b of series) byTs.set(b.ts, [...(byTs.get(b.ts) ?? []), b])
  return [...byTs.keys()].sort((a, b) => a - b).map((ts) => ({
    ts: ts as Timestamp,
    bars: byTs.get(ts)!.sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0))
  }))
}

const csv = (rows: ReadonlyArray<[string, number]>) =>
  "date,open,high,low,close,volume\n" + rows.map(([d, c]) => `${d},${c},${c},${c},${c},100\n`).join("")

/** A fresh directory, removed when the test's scope closes. */
const tempDir = () =>
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(Path.join(tmpdir(), "swarm-feed-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )
const write = (dir: string, name: string, text: string) => Effect.promise(() => writeFile(Path.join(dir, name), text))
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

describe("fromBars", () => {
  it("gives one slice per time, in time order, each with its bars sorted by symbol", () => {
    // Keys deliberately out of order; times partly shared.
    const feed = Feed.fromBars(barsOf({ ZED: [1, 3, 4], ALPHA: [2, 3], MID: [3, 5] }), { fingerprint: "test" })
    expect(shape(feed)).toEqual([
      [1, "ZED"],
      [2, "ALPHA"],
      [3, "ALPHA,MID,ZED"],
      [4, "ZED"],
      [5, "MID"]
    ])
    expect(feed.symbols).toEqual(["ALPHA", "MID", "ZED"])
    expect(feed.fingerprint).toBe("test")
    expect(feed.bars).toBe(7)
    // Unaligned: counting slices would take a merge, so the feed does not claim to know.
    expect(feed.slices).toBeUndefined()
  })

  it("counts slices of aligned series, and can be iterated again with the same result", () => {
    const feed = Feed.fromBars(barsOf({ B: [10, 20, 30], A: [10, 20, 30] }), { fingerprint: "x" })
    expect(feed.slices).toBe(3)
    expect(feed.bars).toBe(6)
    const first = [...feed]
    expect(first.map((s) => [s.ts, s.bars.map((b) => `${b.symbol}@${b.ts}`)])).toEqual([
      [10, ["A@10", "B@10"]],
      [20, ["A@20", "B@20"]],
      [30, ["A@30", "B@30"]]
    ])
    expect([...feed]).toEqual(first)
  })

  it("matches the definition on any series, aligned or not", () => {
    const times = FastCheck.uniqueArray(FastCheck.integer({ min: 0, max: 60 }), { maxLength: 25 })
      .map((ts) => [...ts].sort((a, b) => a - b))
    const market = FastCheck.dictionary(FastCheck.constantFrom("A", "B", "C", "D", "E"), times)
    const aligned = FastCheck.tuple(FastCheck.subarray(["A", "B", "C", "D"], { minLength: 1 }), times)
      .map(([symbols, ts]) => Object.fromEntries(symbols.map((s) => [s, ts])))
    FastCheck.assert(
      FastCheck.property(FastCheck.oneof(market, aligned), (entries) => {
        const bars = barsOf(entries)
        const feed = Feed.fromBars(bars, { fingerprint: "p" })
        const expected = reference(bars)
        expect([...feed]).toEqual(expected)
        expect(feed.bars).toBe(expected.reduce((n, s) => n + s.bars.length, 0))
        if (feed.slices !== undefined) expect(feed.slices).toBe(expected.length)
        expect(feed.symbols).toEqual([...bars].filter(([, s]) => s.length > 0).map(([k]) => k).sort())
      }),
      { numRuns: 300 }
    )
  })

  it("keeps only bars with from ≤ ts ≤ to, of the chosen symbols", () => {
    const bars = barsOf({ A: [1, 2, 3, 4, 5], B: [2, 4, 6], C: [1, 2, 3] })
    expect(shape(Feed.fromBars(bars, { fingerprint: "f", from: 2, to: 4 }))).toEqual([
      [2, "A,B,C"],
      [3, "A,C"],
      [4, "A,B"]
    ])
    const some = Feed.fromBars(bars, { fingerprint: "f", symbols: ["B", "A", "NOPE"], from: 5 })
    expect(shape(some)).toEqual([[5, "A"], [6, "B"]])
    expect(some.symbols).toEqual(["A", "B"])
    expect(some.bars).toBe(2)
    // A symbol with no bar left in the window is not in the feed.
    const late = Feed.fromBars(bars, { fingerprint: "f", from: 4 })
    expect(late.symbols).toEqual(["A", "B"])
    const empty = Feed.fromBars(bars, { fingerprint: "f", from: 7 })
    expect([...empty]).toEqual([])
    expect(empty.symbols).toEqual([])
    expect(empty.bars).toBe(0)
  })
})

describe("load", () => {
  const acme = csv([["2024-01-02", 10], ["2024-01-03", 11], ["2024-01-04", 12]])
  const globex = csv([["2024-01-03", 20], ["2024-01-04", 21]])

  it.scoped("reads the files as Csv.load does, as slices", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* write(dir, "GLOBEX.csv", globex)
      yield* write(dir, "ACME.csv", acme)
      yield* write(dir, "notes.txt", "not data")
      const feed = yield* Feed.load([dir])
      expect(feed.symbols).toEqual(["ACME", "GLOBEX"])
      expect(shape(feed)).toEqual([
        [Date.UTC(2024, 0, 2), "ACME"],
        [Date.UTC(2024, 0, 3), "ACME,GLOBEX"],
        [Date.UTC(2024, 0, 4), "ACME,GLOBEX"]
      ])
      expect([...feed].flatMap((s) => s.bars)).toEqual([...Csv.merge(yield* Csv.load([dir]))])
      expect(feed.bars).toBe(5)
    }))

  it.scoped("fingerprints each file by name and SHA-256, whatever the path, and only the bytes change it", () =>
    Effect.gen(function*() {
      const one = yield* tempDir()
      const two = yield* tempDir()
      yield* Effect.promise(() => mkdir(Path.join(two, "nested")))
      const nested = Path.join(two, "nested")
      for (const dir of [one, nested]) {
        yield* write(dir, "ACME.csv", acme)
        yield* write(dir, "GLOBEX.csv", globex)
      }
      const a = (yield* Feed.load([one])).fingerprint
      expect(a).toBe(`csv:ACME.csv=sha256:${sha256(acme)},GLOBEX.csv=sha256:${sha256(globex)}`)
      // Elsewhere on disk, or named file by file in another order: the same data, the same fingerprint.
      expect((yield* Feed.load([nested])).fingerprint).toBe(a)
      expect((yield* Feed.load([Path.join(nested, "GLOBEX.csv"), Path.join(one, "ACME.csv")])).fingerprint).toBe(a)
      // One byte of one file changes it, though the bars parse to the same numbers.
      yield* write(nested, "GLOBEX.csv", globex.replace("20,20", "20.0,20"))
      const b = (yield* Feed.load([nested])).fingerprint
      expect(b).not.toBe(a)
      expect(b.startsWith(`csv:ACME.csv=sha256:${sha256(acme)},GLOBEX.csv=sha256:`)).toBe(true)
    }))

  it.scoped("applies and records the window", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* write(dir, "ACME.csv", acme)
      yield* write(dir, "GLOBEX.csv", globex)
      const feed = yield* Feed.load([dir], { from: Date.UTC(2024, 0, 3), to: Date.UTC(2024, 0, 3), symbols: ["GLOBEX"] })
      expect(shape(feed)).toEqual([[Date.UTC(2024, 0, 3), "GLOBEX"]])
      expect(feed.fingerprint).toMatch(
        / from=2024-01-03T00:00:00\.000Z to=2024-01-03T00:00:00\.000Z symbols=GLOBEX$/
      )
      const all = yield* Feed.load([dir])
      expect(feed.fingerprint.startsWith(all.fingerprint + " ")).toBe(true)
      const adjusted = yield* Feed.load([dir], { parse: { adjust: "none" } })
      expect(adjusted.fingerprint).toBe(all.fingerprint)
    }))

  it.scoped("fails with Csv.load's CsvError for a missing path, an empty directory or a bad file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const missing = Path.join(dir, "missing.csv")
      const gone = yield* Effect.flip(Feed.load([missing]))
      expect(gone).toBeInstanceOf(Csv.CsvError)
      expect(gone).toMatchObject({ _tag: "CsvError", kind: "Unreadable", file: missing })
      const empty = yield* Effect.flip(Feed.load([dir]))
      expect(empty).toMatchObject({ _tag: "CsvError", kind: "Unreadable", file: dir })
      yield* write(dir, "BAD.csv", "date,open,high,low,close,volume\n2024-01-02,1,1,1,oops,1\n")
      const bad = yield* Effect.flip(Feed.load([dir]))
      expect(bad).toMatchObject({ _tag: "CsvError", kind: "BadNumber", line: 2, column: "close" })
      expect(Exit.isFailure(yield* Effect.exit(Feed.load([dir])))).toBe(true)
    }))
})

describe("synthetic", () => {
  const config = (over: Partial<Synthetic.Config> = {}): Synthetic.Config => ({
    ...Synthetic.defaults,
    seed: 3,
    bars: 300,
    symbols: [sym("A"), sym("B"), sym("C")],
    ...over
  })

  it("delivers exactly the bars Synthetic.generate makes, slice by slice", () => {
    for (const c of [config(), config({ symbols: [sym("ZZ"), sym("A"), sym("M")], intervalMs: 900_000, weekdaysOnly: false })]) {
      const feed = Feed.synthetic(c)
      const market = Synthetic.generate(c)
      expect([...feed]).toEqual(reference(market.bars))
      expect(feed.symbols).toEqual([...c.symbols].sort())
      expect(feed.bars).toBe(3 * 300)
      expect(feed.slices).toBe(300)
      // Again from the start, the same.
      expect([...feed]).toEqual(reference(market.bars))
    }
  })

  it("delivers a symbol listed twice once, as generate's map keeps it", () => {
    const c = config({ symbols: [sym("B"), sym("A"), sym("B")], bars: 50 })
    const feed = Feed.synthetic(c)
    expect(feed.symbols).toEqual(["A", "B"])
    expect(feed.bars).toBe(100)
    expect([...feed]).toEqual(reference(Synthetic.generate(c).bars))
  })

  it("is lazy: the first slices come without drawing the rest", () => {
    const feed = Feed.synthetic(config({ bars: 1e12, symbols: [sym("A")] }))
    const iterator = feed[globalThis.Symbol.iterator]()
    const first = iterator.next()
    expect(first.done).toBe(false)
    expect(first.value).toEqual(reference(Synthetic.generate(config({ bars: 1, symbols: [sym("A")] })).bars)[0])
  })

  it("fingerprints the configuration: stable, and different for any other market", () => {
    const a = Feed.synthetic(config()).fingerprint
    expect(a).toMatch(/^synthetic:seed=3,symbols=A\|B\|C,bars=300,start=2020-01-06T00:00:00\.000Z,intervalMs=86400000,config=sha256:[0-9a-f]{16}$/)
    // The same configuration with its keys in another order.
    const reordered = Object.fromEntries(Object.entries(config()).reverse()) as Synthetic.Config
    expect(Feed.synthetic(reordered).fingerprint).toBe(a)
    expect(Feed.synthetic(config({ seed: 4 })).fingerprint).not.toBe(a)
    expect(Feed.synthetic(config({ bars: 301 })).fingerprint).not.toBe(a)
    const calmer = config({ regimes: Synthetic.defaults.regimes.map((r) => ({ ...r, volatility: r.volatility / 2 })) as never })
    const changed = Feed.synthetic(calmer).fingerprint
    expect(changed).not.toBe(a)
    expect(changed.slice(0, changed.lastIndexOf(":"))).toBe(a.slice(0, a.lastIndexOf(":")))
  })
})
