import { describe, expect, it } from "@effect/vitest"
import { FastCheck } from "effect"
import { RVOL } from "trading-signals"
import * as Indicators from "../../src/trading/Indicators.js"

/**
 * Reference values from Tulip Indicators' test suite (tulipindicators tests/untest.txt, v0.8.0):
 * an independent C implementation, printed to 3 decimals.
 */
const TULIP_PRICES = [81.59, 81.06, 82.87, 83.0, 83.61, 83.15, 82.84, 83.99, 84.55, 84.36, 85.53, 86.54, 86.89, 87.77, 87.29]
const TULIP_VOLUME = [5653100, 6447400, 7690900, 3831400, 4455100, 3798000, 3936200, 4732000, 4841300, 3915300, 6830800, 6694100, 5293600, 7985800, 4807900]

const feed = <A>(indicator: Indicators.Indicator<A>, xs: ReadonlyArray<number>): Array<A | undefined> => xs.map((x) => indicator.update(x))
const fixed3 = (xs: ReadonlyArray<number | undefined>) => xs.map((x) => (x === undefined ? undefined : x.toFixed(3)))
const undefinedTimes = (n: number) => Array.from({ length: n }, () => undefined)

const close = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? a === b : Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b))

// -- Naive batch definitions: each recomputes from the whole prefix xs[0..t], with nothing after t.

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length

const smaAt = (xs: ReadonlyArray<number>, p: number, t: number) => (t + 1 < p ? undefined : mean(xs.slice(t + 1 - p, t + 1)))

const emaSeries = (xs: ReadonlyArray<number>, p: number): Array<number> => {
  const a = 2 / (p + 1)
  const out: Array<number> = []
  xs.forEach((x, i) => out.push(i === 0 ? x : a * x + (1 - a) * out[i - 1]!))
  return out
}
const emaAt = (xs: ReadonlyArray<number>, p: number, t: number) => (t + 1 < p ? undefined : emaSeries(xs.slice(0, t + 1), p)[t])

const rsiAt = (xs: ReadonlyArray<number>, p: number, t: number) => {
  if (t < p) return undefined
  const d = xs.slice(1, t + 1).map((x, i) => x - xs[i]!)
  let gain = mean(d.slice(0, p).map((x) => Math.max(x, 0)))
  let loss = mean(d.slice(0, p).map((x) => Math.max(-x, 0)))
  for (const x of d.slice(p)) {
    gain = (gain * (p - 1) + Math.max(x, 0)) / p
    loss = (loss * (p - 1) + Math.max(-x, 0)) / p
  }
  return loss === 0 ? 100 : 100 - 100 / (1 + gain / loss)
}

const bandsAt = (xs: ReadonlyArray<number>, p: number, k: number, t: number) => {
  if (t + 1 < p) return undefined
  const w = xs.slice(t + 1 - p, t + 1)
  const m = mean(w)
  const sd = Math.sqrt(mean(w.map((x) => (x - m) ** 2)))
  return { lower: m - k * sd, middle: m, upper: m + k * sd }
}

const macdAt = (xs: ReadonlyArray<number>, fast: number, slow: number, signal: number, t: number) => {
  if (t + 2 < slow + signal) return undefined
  const prefix = xs.slice(0, t + 1)
  const f = emaSeries(prefix, fast)
  const s = emaSeries(prefix, slow)
  const line = prefix.map((_, i) => f[i]! - s[i]!).slice(slow - 1)
  const sig = emaSeries(line, signal)
  const macd = line[line.length - 1]!
  const sg = sig[sig.length - 1]!
  return { macd, signal: sg, histogram: macd - sg }
}

const volumeAt = (vs: ReadonlyArray<number>, p: number, t: number) => {
  if (t < p) return undefined
  const average = mean(vs.slice(t - p, t))
  return { average, ratio: average > 0 ? vs[t]! / average : undefined }
}

/** Every indicator under test, with its batch twin. */
const cases: ReadonlyArray<{
  readonly name: string
  readonly make: () => Indicators.Indicator<unknown>
  readonly at: (xs: ReadonlyArray<number>, t: number) => unknown
}> = [
  { name: "Sma(5)", make: () => new Indicators.Sma(5), at: (xs: ReadonlyArray<number>, t: number) => smaAt(xs, 5, t) },
  { name: "Sma(1)", make: () => new Indicators.Sma(1), at: (xs: ReadonlyArray<number>, t: number) => smaAt(xs, 1, t) },
  { name: "Ema(4)", make: () => new Indicators.Ema(4), at: (xs: ReadonlyArray<number>, t: number) => emaAt(xs, 4, t) },
  { name: "Rsi(3)", make: () => new Indicators.Rsi(3), at: (xs: ReadonlyArray<number>, t: number) => rsiAt(xs, 3, t) },
  { name: "Rsi(14)", make: () => new Indicators.Rsi(14), at: (xs: ReadonlyArray<number>, t: number) => rsiAt(xs, 14, t) },
  { name: "Bollinger(6, 2)", make: () => new Indicators.Bollinger(6, 2), at: (xs: ReadonlyArray<number>, t: number) => bandsAt(xs, 6, 2, t) },
  { name: "Macd(3, 6, 4)", make: () => new Indicators.Macd(3, 6, 4), at: (xs: ReadonlyArray<number>, t: number) => macdAt(xs, 3, 6, 4, t) },
  { name: "VolumeAverage(5)", make: () => new Indicators.VolumeAverage(5), at: (xs: ReadonlyArray<number>, t: number) => volumeAt(xs, 5, t) }
]

/** Compare a value of any indicator (a number or a record of numbers) with its reference. */
const same = (a: unknown, b: unknown): boolean => {
  if (a === undefined || b === undefined) return a === b
  if (typeof a === "number" && typeof b === "number") return close(a, b)
  if (typeof a === "object" && typeof b === "object" && a !== null && b !== null) {
    const keys = Object.keys(b)
    return Object.keys(a).length === keys.length &&
      keys.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  }
  return false
}

/** Prices with flat runs (no change: RSI's zero-loss case) and jumps. */
const series = FastCheck.array(
  FastCheck.oneof(
    { weight: 4, arbitrary: FastCheck.double({ min: 1, max: 1000, noNaN: true }) },
    { weight: 1, arbitrary: FastCheck.constant(100) }
  ),
  { minLength: 1, maxLength: 80 }
)

describe("known reference values (Tulip Indicators)", () => {
  it("SMA(5)", () => {
    expect(fixed3(feed(new Indicators.Sma(5), TULIP_PRICES))).toEqual([
      ...undefinedTimes(4),
      ...["82.426", "82.738", "83.094", "83.318", "83.628", "83.778", "84.254", "84.994", "85.574", "86.218", "86.804"]
    ])
  })

  it("EMA(5), seeded with the first price, reported from the 5th", () => {
    const tulip = ["81.590", "81.413", "81.899", "82.266", "82.714", "82.859", "82.853", "83.232", "83.671", "83.901", "84.444", "85.143", "85.725", "86.407", "86.701"]
    expect(fixed3(feed(new Indicators.Ema(5), TULIP_PRICES))).toEqual([...undefinedTimes(4), ...tulip.slice(4)])
  })

  it("RSI(5), Wilder's smoothing, from the 6th price", () => {
    expect(fixed3(feed(new Indicators.Rsi(5), TULIP_PRICES))).toEqual([
      ...undefinedTimes(5),
      ...["72.034", "64.927", "75.936", "79.796", "74.713", "83.033", "87.478", "88.755", "91.483", "78.498"]
    ])
  })

  it("Bollinger(5, 2), population standard deviation", () => {
    const out = feed(new Indicators.Bollinger(5, 2), TULIP_PRICES)
    expect(out.slice(0, 4)).toEqual(undefinedTimes(4))
    expect(fixed3(out.slice(4).map((b) => b!.lower))).toEqual(["80.530", "80.987", "82.533", "82.472", "82.418", "82.435", "82.511", "83.143", "83.536", "83.870", "85.289"])
    expect(fixed3(out.slice(4).map((b) => b!.middle))).toEqual(["82.426", "82.738", "83.094", "83.318", "83.628", "83.778", "84.254", "84.994", "85.574", "86.218", "86.804"])
    expect(fixed3(out.slice(4).map((b) => b!.upper))).toEqual(["84.322", "84.489", "83.655", "84.164", "84.838", "85.121", "85.997", "86.845", "87.612", "88.566", "88.319"])
  })

  it("MACD(2, 5, 9), reported once the signal line is warm (from the 13th price)", () => {
    const out = feed(new Indicators.Macd(2, 5, 9), TULIP_PRICES)
    expect(out.slice(0, 12)).toEqual(undefinedTimes(12))
    // Tulip's outputs start at the 5th price; ours are its last three.
    expect(fixed3(out.slice(12).map((m) => m!.macd))).toEqual(["0.891", "0.979", "0.621"])
    expect(fixed3(out.slice(12).map((m) => m!.signal))).toEqual(["0.656", "0.721", "0.701"])
    expect(fixed3(out.slice(12).map((m) => m!.histogram))).toEqual(["0.235", "0.258", "-0.080"])
  })

  it("volume against the average of the bars before it: trading-signals' RVOL gives the same ratio", () => {
    const ours = feed(new Indicators.VolumeAverage(5), TULIP_VOLUME)
    const rvol = new RVOL(5)
    const theirs = TULIP_VOLUME.map((v) => rvol.add(v) ?? undefined)
    expect(ours.map((v) => v?.ratio)).toEqual(theirs)
    expect(ours[5]).toEqual({ average: (5653100 + 6447400 + 7690900 + 3831400 + 4455100) / 5, ratio: 3798000 / 5615580 })
    expect(new Indicators.VolumeAverage(2).update(0)).toBeUndefined()
    const zero = new Indicators.VolumeAverage(2)
    expect(feed(zero, [0, 0, 10])).toEqual([undefined, undefined, { average: 0, ratio: undefined }])
  })

  it("RSI is 100 when prices never fall, and 0 when they never rise", () => {
    expect(feed(new Indicators.Rsi(3), [1, 2, 3, 4, 4, 5]).slice(3)).toEqual([100, 100, 100])
    expect(feed(new Indicators.Rsi(3), [5, 4, 3, 2, 1]).slice(3)).toEqual([0, 0])
  })
})

describe("every indicator", () => {
  it.each(cases)("$name: bar by bar equals the batch definition over the history so far", ({ at, make }) => {
    FastCheck.assert(
      FastCheck.property(series, (xs) => {
        const indicator = make()
        xs.forEach((x, t) => {
          const v = indicator.update(x)
          const expected = at(xs, t)
          if (!same(v, expected)) throw new Error(`at ${t}: got ${JSON.stringify(v)}, batch gives ${JSON.stringify(expected)}`)
          expect(indicator.value).toBe(v)
        })
      }),
      { numRuns: 300 }
    )
  })

  it.each(cases)("$name: is undefined for exactly warmUp - 1 updates, then always defined", ({ make }) => {
    FastCheck.assert(
      FastCheck.property(series, (xs) => {
        const indicator = make()
        xs.forEach((x, t) => {
          const v = indicator.update(x)
          // Only the volume ratio may be missing (a zero average); the value itself is there.
          expect(v === undefined).toBe(t + 1 < indicator.warmUp)
        })
      }),
      { numRuns: 100 }
    )
  })

  it.each(cases)("$name: never looks ahead — bars after t cannot change the value at t", ({ make }) => {
    FastCheck.assert(
      FastCheck.property(series, series, series, (past, futureA, futureB) => {
        const a = feed(make(), [...past, ...futureA]).slice(0, past.length)
        const b = feed(make(), [...past, ...futureB]).slice(0, past.length)
        const alone = feed(make(), past)
        expect(a).toEqual(alone)
        expect(b).toEqual(alone)
      }),
      { numRuns: 200 }
    )
  })

  it("values handed out are not changed by later updates", () => {
    const bands = new Indicators.Bollinger(3)
    const macd = new Indicators.Macd(2, 3, 2)
    const first = feed(bands, [1, 2, 3])[2]!
    const m = feed(macd, [1, 2, 3, 4])[3]!
    const snapshot = [{ ...first }, { ...m }]
    feed(bands, [10, 20, 30])
    feed(macd, [10, 20, 30])
    expect([first, m]).toEqual(snapshot)
  })
})
