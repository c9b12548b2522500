import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import { readdir } from "node:fs/promises"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { Symbol } from "../../schemas/Ids.js"
import { Bar } from "../../schemas/Market.js"
import * as Csv from "../../src/market/Csv.js"
import * as Prng from "../../src/market/Prng.js"
import * as Synthetic from "../../src/market/Synthetic.js"

const sym = (s: string) => s as Symbol
const isBar = Schema.is(Bar)
const DATA = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "data")

const config = (over: Partial<Synthetic.Config> = {}): Synthetic.Config => ({ ...Synthetic.defaults, ...over })
const logReturns = (bars: ReadonlyArray<Bar>) => bars.slice(1).map((b, i) => Math.log(b.close / bars[i]!.close))
const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
const sd = (xs: ReadonlyArray<number>) => {
  const m = mean(xs)
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1))
}
const correlation = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => {
  const ma = mean(a), mb = mean(b)
  let cov = 0
  for (let i = 0; i < a.length; i++) cov += (a[i]! - ma) * (b[i]! - mb)
  return cov / (a.length - 1) / (sd(a) * sd(b))
}
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

describe("mulberry32", () => {
  /** The spec's algorithm in BigInt arithmetic modulo 2^32, written independently of src/market/Prng.ts. */
  const reference = (seed: number) => {
    const M = 2n ** 32n
    let a = BigInt(seed) % M
    return () => {
      a = (a + 0x6d2b79f5n) % M
      let t = ((a ^ (a >> 15n)) * (a | 1n)) % M
      t = ((t + (((t ^ (t >> 7n)) * (t | 61n)) % M)) % M) ^ t
      return Number((t ^ (t >> 14n)) % M)
    }
  }

  it("matches the W2.md specification, draw for draw", () => {
    for (const seed of [0, 1, 20191025, 20191124, 2 ** 32 - 1]) {
      const ours = Prng.make(seed)
      const spec = reference(seed)
      for (let i = 0; i < 1000; i++) expect(ours.nextUint32()).toBe(spec())
    }
  })

  it("gives floats in [0, 1) and standard normals", () => {
    const p = Prng.make(7)
    const u = Array.from({ length: 20_000 }, p.nextFloat)
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...u)).toBeLessThan(1)
    expect(Math.abs(mean(u) - 0.5)).toBeLessThan(0.01)
    const z = Array.from({ length: 20_000 }, p.nextNormal)
    expect(Math.abs(mean(z))).toBeLessThan(0.03)
    expect(Math.abs(sd(z) - 1)).toBeLessThan(0.03)
    expect(z.every(Number.isFinite)).toBe(true)
  })
})

describe("W2 files (../shared/W2.md)", () => {
  it("file 0, row 0: the values the spec's PRNG gives, printed as String(k * 1.01)", () => {
    const M = 2n ** 32n
    let a = BigInt(20191025)
    const draw = () => {
      a = (a + 0x6d2b79f5n) % M
      let t = ((a ^ (a >> 15n)) * (a | 1n)) % M
      t = ((t + (((t ^ (t >> 7n)) * (t | 61n)) % M)) % M) ^ t
      const out = (t ^ (t >> 14n)) % M
      return 10n + (out * 10n) / M // k = 10 + floor(out * 10 / 2^32), in exact integers
    }
    const ks = Array.from({ length: 6 }, draw)
    const row0 = "2010-01-01 00:00:00," + ks.map((k) => String(Number(k) * 1.01)).join(",")
    const lines = Synthetic.w2Csv(0, 3).split("\n")
    expect(lines[0]).toBe("datetime,open,high,low,close,volume,openinterest")
    expect(lines[1]).toBe(row0)
    // the same, written out, so a change in either side shows
    expect(lines[1]).toBe("2010-01-01 00:00:00,14.14,11.11,18.18,19.19,19.19,12.120000000000001")
    expect(lines[3]).toBe("2010-01-01 00:30:00,12.120000000000001,14.14,18.18,16.16,11.11,11.11")
    expect(lines[4]).toBe("")
  })

  it("prints only the ten values of the spec", () => {
    expect([10, 11, 12, 13, 14, 15, 16, 17, 18, 19].map((k) => String(k * 1.01))).toEqual([
      "10.1", "11.11", "12.120000000000001", "13.13", "14.14", "15.15", "16.16", "17.17", "18.18", "19.19"
    ])
    const allowed = new Set(["10.1", "11.11", "12.120000000000001", "13.13", "14.14", "15.15", "16.16", "17.17", "18.18", "19.19"])
    const text = Synthetic.w2Csv(42, 500)
    for (const line of text.trimEnd().split("\n").slice(1)) {
      for (const v of line.split(",").slice(1)) expect(allowed.has(v)).toBe(true)
    }
  })

  it("names files candles00..candles99, steps 15 minutes without gaps, ends lines with \\n", () => {
    expect(Synthetic.w2FileName(0)).toBe("candles00.csv")
    expect(Synthetic.w2FileName(7)).toBe("candles07.csv")
    expect(Synthetic.w2FileName(99)).toBe("candles99.csv")
    const text = Synthetic.w2Csv(3)
    expect(text.includes("\r")).toBe(false)
    const lines = text.split("\n")
    expect(lines.length).toBe(1 + Synthetic.W2_ROWS + 1) // header, rows, and the empty string after the last \n
    expect(lines[96]).toMatch(/^2010-01-01 23:45:00,/)
    expect(lines[97]).toMatch(/^2010-01-02 00:00:00,/)
    // row 19,999: 299,985 minutes = 208 days 7 h 45 min after 2010-01-01
    expect(lines[20_000]).toMatch(/^2010-07-28 07:45:00,/)
  })

  it("each file has its own stream (seed 20191025 + i) and the files are reproducible", () => {
    expect(Synthetic.w2Csv(5, 50)).toBe(Synthetic.w2Csv(5, 50))
    expect(Synthetic.w2Csv(5, 50)).not.toBe(Synthetic.w2Csv(6, 50))
    expect(Synthetic.w2Csv(5, 50)).toBe(Synthetic.w2Csv(5, 100).split("\n").slice(0, 51).join("\n") + "\n")
    const bars = Either.getOrThrow(Csv.parse(Synthetic.w2Csv(9, 1000), Synthetic.w2FileName(9), { ohlc: "as-given" }))
    expect(bars.get(sym("candles09"))!.length).toBe(1000)
  })
})

describe("the regime-switching market", () => {
  it("is a function of its seed: same seed, identical bars; another seed, other bars", () => {
    const a = Synthetic.generate(config({ seed: 11, symbols: [sym("A"), sym("B")] }))
    const b = Synthetic.generate(config({ seed: 11, symbols: [sym("A"), sym("B")] }))
    expect(b).toEqual(a)
    expect(Csv.format(b.bars.get(sym("A"))!)).toBe(Csv.format(a.bars.get(sym("A"))!))
    const c = Synthetic.generate(config({ seed: 12, symbols: [sym("A"), sym("B")] }))
    expect(c.bars.get(sym("A"))!.map((x) => x.close)).not.toEqual(a.bars.get(sym("A"))!.map((x) => x.close))
  })

  it("adding bars never changes the earlier ones", () => {
    const short = Synthetic.generate(config({ seed: 5, bars: 100, symbols: [sym("A"), sym("B")] }))
    const long = Synthetic.generate(config({ seed: 5, bars: 300, symbols: [sym("A"), sym("B")] }))
    expect(long.bars.get(sym("B"))!.slice(0, 100)).toEqual(short.bars.get(sym("B")))
    expect(long.regimes.slice(0, 100)).toEqual(short.regimes)
  })

  it("bars are valid and OHLC-consistent; open is the previous close plus a small gap", () => {
    for (const decimals of [0, 2, 4]) {
      const market = Synthetic.generate(config({ seed: 21, bars: 2000, decimals, symbols: [sym("A"), sym("B"), sym("C")] }))
      for (const bars of market.bars.values()) {
        // Collected, then asserted once: a failure names the bars at fault.
        const wrong = bars.filter((b, i) =>
          !isBar(b) ||
          b.high < Math.max(b.open, b.close) ||
          b.low > Math.min(b.open, b.close) ||
          !(b.low > 0) ||
          !Number.isInteger(b.volume) ||
          [b.open, b.high, b.low, b.close].some((v) => Number(v.toFixed(decimals)) !== v) ||
          (i > 0 && b.ts <= bars[i - 1]!.ts)
        )
        expect(wrong).toEqual([])
        const gaps = bars.slice(1).map((b, i) => Math.abs(Math.log(b.open / bars[i]!.close)))
        const moves = logReturns(bars).map(Math.abs)
        expect(mean(gaps)).toBeLessThan(mean(moves))
        expect(Math.max(...gaps)).toBeLessThan(0.25)
      }
    }
  })

  it("regimes switch, and each keeps its character (drift, volatility, volume)", () => {
    const market = Synthetic.generate(config({ seed: 2, bars: 20_000, symbols: [sym("A"), sym("B")], decimals: 6 }))
    const r = market.regimes
    const switches = r.slice(1).filter((x, i) => x !== r[i]).length
    expect(switches).toBeGreaterThan(500)
    for (let k = 0; k < 3; k++) expect(r.filter((x) => x === k).length).toBeGreaterThan(2000)
    const bars = market.bars.get(sym("A"))!
    const returns = logReturns(bars)
    const byRegime = (k: number) => returns.filter((_, i) => r[i + 1] === k)
    const [side, bull, bear] = [0, 1, 2].map(byRegime) as [Array<number>, Array<number>, Array<number>]
    expect(mean(bull)).toBeGreaterThan(mean(side))
    expect(mean(bear)).toBeLessThan(mean(side))
    expect(sd(bear)).toBeGreaterThan(1.5 * sd(side))
    const volumeIn = (k: number) => median(bars.filter((_, i) => r[i] === k).map((b) => b.volume))
    expect(volumeIn(2)).toBeGreaterThan(volumeIn(1))
    expect(volumeIn(1)).toBeGreaterThan(volumeIn(0))
  })

  it("volume surges exist and stand out from the surrounding volume", () => {
    const market = Synthetic.generate(config({ seed: 8, bars: 2000, symbols: [sym("A")] }))
    const bars = market.bars.get(sym("A"))!
    const surges = market.surges.get(sym("A"))!
    expect(surges.length).toBeGreaterThan(20)
    expect(surges.length).toBeLessThan(80)
    const ratios = surges.filter((i) => i >= 20).map((i) => bars[i]!.volume / mean(bars.slice(i - 20, i).map((b) => b.volume)))
    expect(median(ratios)).toBeGreaterThan(3)
    const none = Synthetic.generate(config({ seed: 8, bars: 2000, symbols: [sym("A")], surgeProbability: 0 }))
    expect(none.surges.get(sym("A"))).toEqual([])
  })

  it("symbols move together through the market factor", () => {
    const symbols = [sym("A"), sym("B")] as const
    const returnsOf = (marketWeight: number) => {
      const m = Synthetic.generate(config({ seed: 4, bars: 5000, symbols, marketWeight, decimals: 6 }))
      return symbols.map((s) => logReturns(m.bars.get(s)!))
    }
    const [a1, b1] = returnsOf(0.5)
    expect(correlation(a1!, b1!)).toBeGreaterThan(0.35)
    expect(correlation(a1!, b1!)).toBeLessThan(0.65)
    const [a0, b0] = returnsOf(0)
    expect(Math.abs(correlation(a0!, b0!))).toBeLessThan(0.1)
  })

  it("spaces bars by the interval: daily bars skip weekends, intraday bars step evenly", () => {
    const daily = Synthetic.generate(config({ bars: 30, start: Date.UTC(2024, 0, 5) })).bars.get(sym("SYNA"))!
    expect(new Date(daily[0]!.ts).toISOString()).toBe("2024-01-05T00:00:00.000Z") // a Friday
    expect(new Date(daily[1]!.ts).toISOString()).toBe("2024-01-08T00:00:00.000Z") // the Monday after
    for (const b of daily) expect([1, 2, 3, 4, 5]).toContain(new Date(b.ts).getUTCDay())
    const intraday = Synthetic.generate(config({ bars: 50, intervalMs: 900_000, weekdaysOnly: false, start: Date.UTC(2024, 0, 6, 9) }))
      .bars.get(sym("SYNA"))!
    intraday.slice(1).forEach((b, i) => expect(b.ts - intraday[i]!.ts).toBe(900_000))
  })

  it("decodes a configuration and says what is wrong with a bad one", () => {
    const decode = Schema.decodeUnknownEither(Synthetic.Config)
    expect(Either.isRight(decode(Synthetic.defaults))).toBe(true)
    const bad = decode({ ...Synthetic.defaults, transitions: [[0.5, 0.5, 0.5], [0, 1, 0], [0, 0, 1]] })
    expect(Either.isLeft(bad) && bad.left.message).toContain("rows each sum to 1")
    expect(Either.isLeft(decode({ ...Synthetic.defaults, symbols: ["=cmd"] }))).toBe(true)
    expect(Either.isLeft(decode({ ...Synthetic.defaults, marketWeight: 1.5 }))).toBe(true)
  })
})

describe("the sample under data/", () => {
  it("is exactly what the generator writes (regenerate: npx vitest run test/market/Synthetic.test.ts -u)", async () => {
    const files = Synthetic.sample()
    expect([...files.keys()]).toEqual(["ACME.csv", "GLOBEX.csv", "INITECH.csv"])
    // Checked before the snapshots, which would otherwise quietly write a missing file.
    const committed = (await readdir(DATA)).filter((f) => f.endsWith(".csv")).sort()
    expect(committed).toEqual([...files.keys()])
    for (const [name, text] of files) await expect(text).toMatchFileSnapshot(Path.join(DATA, name))
  })

  it.effect("loads back to the generator's bars, to the last bit, with 3 × 500 daily bars", () =>
    Effect.gen(function*() {
      const bars = yield* Csv.load([DATA])
      const market = Synthetic.generate(Synthetic.sampleConfig)
      expect(bars).toEqual(market.bars)
      expect([...bars.values()].map((b) => b.length)).toEqual([500, 500, 500])
      const regimes = market.regimes
      expect(new Set(regimes).size).toBe(3)
      expect([...market.surges.values()].every((s) => s.length > 0)).toBe(true)
    }))
})
