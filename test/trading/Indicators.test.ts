import { describe, expect, it } from "@effect/vitest"
import { FastCheck } from "effect"
import { BollingerBands, EMA, MACD, RSI, RVOL, SMA } from "trading-signals"
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
  { name: "Rsi(1)", make: () => new Indicators.Rsi(1), at: (xs: ReadonlyArray<number>, t: number) => rsiAt(xs, 1, t) },
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

// -- trading-signals, the oracle: the indicators above are written out for speed (see the module's
// header); these feed the same series to both, bar by bar.

/**
 * The tolerance: relative 1e-9 — of the library's value, or of the largest input so far where that
 * is larger (a window of zeros after larger values, a MACD line crossing 0: there an absolute error
 * of 1e-16 of the inputs is no error). Most values are in fact equal to the bit (EMA, RSI, MACD
 * repeat the library's operations), SMA and Bollinger's within a few ulps.
 */
const TOLERANCE = 1e-9
const near = (a: number, b: number, scale: number) => Math.abs(a - b) <= TOLERANCE * Math.max(Math.abs(b), scale)

/** One parameter set per indicator; `analysts` are the analysts' defaults. */
interface Params {
  readonly sma: number
  readonly ema: number
  readonly rsi: number
  readonly bands: number
  readonly deviations: number
  readonly fast: number
  readonly slow: number
  readonly signal: number
  readonly volume: number
}
const analysts: Params = { sma: 50, ema: 26, rsi: 14, bands: 20, deviations: 2, fast: 12, slow: 26, signal: 9, volume: 20 }
const params: FastCheck.Arbitrary<Params> = FastCheck.oneof(
  FastCheck.constant(analysts),
  FastCheck.record({
    sma: FastCheck.integer({ min: 1, max: 60 }),
    ema: FastCheck.integer({ min: 1, max: 60 }),
    // trading-signals' RSI(1) never warms up: RSI(1) is checked against the batch definition above.
    rsi: FastCheck.integer({ min: 2, max: 30 }),
    bands: FastCheck.integer({ min: 1, max: 60 }),
    deviations: FastCheck.double({ min: 0.5, max: 3, noNaN: true }),
    fast: FastCheck.integer({ min: 1, max: 20 }),
    slow: FastCheck.integer({ min: 2, max: 40 }),
    signal: FastCheck.integer({ min: 1, max: 15 }),
    volume: FastCheck.integer({ min: 1, max: 60 })
  })
)

/**
 * Feed `xs` to every indicator and its trading-signals twin; throws at the first disagreement in
 * warm-up or value. Bollinger's width (upper − lower) is also compared on its own, relative to
 * itself — next to bands at 1e6, 1e-9 of the bands would let a width of 1 be off by 0.2% — give or
 * take the 4 ulps of the inputs that subtracting two bands can cost (each band can be an ulp or two
 * off the library's: CI once saw 2 ulps at 1e6; 4 × ε × the largest input bounds 4 ulps). Over a
 * flat window ours must be 0 exactly; the library's is rounding noise there (its mean can be an ulp
 * off the value).
 */
const agreeWithLibrary = (xs: ReadonlyArray<number>, p: Params): void => {
  const fail = (name: string, t: number, ours: unknown, theirs: unknown) => {
    throw new Error(`${name} at ${t}: ours ${JSON.stringify(ours)}, trading-signals ${JSON.stringify(theirs)}`)
  }
  const sma = [new Indicators.Sma(p.sma), new SMA(p.sma)] as const
  const ema = [new Indicators.Ema(p.ema), new EMA(p.ema)] as const
  const rsi = [new Indicators.Rsi(p.rsi), new RSI(p.rsi)] as const
  const bands = [new Indicators.Bollinger(p.bands, p.deviations), new BollingerBands(p.bands, p.deviations)] as const
  const signalEma = new EMA(p.signal)
  const macd = [new Indicators.Macd(p.fast, p.slow, p.signal), new MACD(new EMA(p.fast), new EMA(p.slow), signalEma)] as const
  const volume = [new Indicators.VolumeAverage(p.volume), new SMA(p.volume), new RVOL(p.volume)] as const
  let scale = 0
  /** How many values in a row, up to this one, are equal. */
  let run = 0
  let previousAverage: number | null = null
  xs.forEach((x, t) => {
    scale = Math.max(scale, Math.abs(x))
    const number = (name: string, ours: number | undefined, theirs: number | null) => {
      if (ours === undefined ? theirs !== null : theirs === null || !near(ours, theirs, scale)) fail(name, t, ours, theirs)
    }
    number(`Sma(${p.sma})`, sma[0].update(x), sma[1].add(x))
    // The library's EMA has a value from the first input; it is stable (warm) from the period-th.
    const e = ema[1].add(x)
    number(`Ema(${p.ema})`, ema[0].update(x), ema[1].isStable ? e : null)
    number(`Rsi(${p.rsi})`, rsi[0].update(x), rsi[1].add(x))

    const b = bands[0].update(x)
    const B = bands[1].add(x)
    run = t > 0 && x === xs[t - 1] ? run + 1 : 1
    if (
      b === undefined ? B !== null : B === null || !near(b.lower, B.lower, scale) || !near(b.middle, B.middle, scale) ||
        !near(b.upper, B.upper, scale) ||
        (run >= p.bands
          ? b.upper !== b.lower
          : Math.abs((b.upper - b.lower) - (B.upper - B.lower)) > TOLERANCE * (B.upper - B.lower) + 4 * Number.EPSILON * scale)
    ) fail(`Bollinger(${p.bands}, ${p.deviations})`, t, b, B)

    // Reported once the signal line is warm, as its EMA says.
    const m = macd[0].update(x)
    const M = macd[1].add(x)
    const warm = M !== null && signalEma.isStable
    if (
      m === undefined ? warm : !warm || !near(m.macd, M.macd, scale) || !near(m.signal, M.signal, scale) ||
        !near(m.histogram, M.histogram, scale)
    ) fail(`Macd(${p.fast}, ${p.slow}, ${p.signal})`, t, m, M)

    // The average of the bars before this one: the library's SMA one bar behind; the ratio: RVOL's,
    // which has none (null) when that average is 0.
    const v = volume[0].update(x)
    const ratio = volume[2].add(x)
    if (
      v === undefined ? previousAverage !== null : previousAverage === null || !near(v.average, previousAverage, scale) ||
        (v.ratio === undefined ? ratio !== null : ratio === null || !near(v.ratio, ratio, 0))
    ) fail(`VolumeAverage(${p.volume})`, t, v, { average: previousAverage, ratio })
    previousAverage = volume[1].add(x)
  })
}

/** A fast deterministic generator (mulberry32): fast-check draws the seed, not 20,000 values. */
const uniform = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * 20,000 values: 1e6 plus noise of 1e-3 to 100 (with flat runs), a random walk from 100, or a
 * constant.
 */
const longSeries = (
  { level, noise, seed, shape }: { seed: number; shape: string; noise: number; level: number }
): Array<number> => {
  const u = uniform(seed)
  const xs: Array<number> = []
  let walk = 100
  for (let i = 0; i < 20_000; i++) {
    if (shape === "constant") xs.push(level)
    else if (shape === "walk") xs.push(walk *= 1 + (u() - 0.5) * 0.02)
    else xs.push(i > 0 && u() < 0.1 ? xs[i - 1]! : 1e6 + (u() * 2 - 1) * noise)
  }
  return xs
}
const long = FastCheck.record({
  seed: FastCheck.integer(),
  shape: FastCheck.constantFrom("offset", "walk", "constant"),
  noise: FastCheck.integer({ min: -3, max: 2 }).map((k) => 10 ** k),
  level: FastCheck.double({ min: 1e-3, max: 1e9, noNaN: true })
}).map(longSeries)

/** Short series with flat runs, zeros (a zero volume average) and jumps of up to 1000×. */
const short = FastCheck.array(
  FastCheck.oneof(
    { weight: 4, arbitrary: FastCheck.double({ min: 1, max: 1000, noNaN: true }) },
    { weight: 2, arbitrary: FastCheck.constant(100) },
    { weight: 1, arbitrary: FastCheck.constant(0) }
  ),
  { minLength: 1, maxLength: 200 }
)

describe("against trading-signals (relative 1e-9, most values to the bit)", () => {
  it("short series with flat runs, zeros and jumps: the same warm-up and values", () => {
    FastCheck.assert(FastCheck.property(short, params, (xs, p) => agreeWithLibrary(xs, p)), { numRuns: 300 })
  })

  it("20,000 values at 1e6 plus small noise, random walks and constants: the same warm-up and values", () => {
    FastCheck.assert(FastCheck.property(long, params, (xs, p) => agreeWithLibrary(xs, p)), { numRuns: 12 })
  })

  it("bands at 1e6 with a width of 1e-3, whose widths differ from the library's by 2 ulps of 1e6", () => {
    // Found by searching seeds: each of these fails a width bound of 1 × ε × the largest input.
    const cases = [[269259, 36, 2.7797708673169836], [791913, 43, 2.6048039570450783]] as const
    for (const [seed, bands, deviations] of cases) {
      agreeWithLibrary(longSeries({ seed, shape: "offset", noise: 1e-3, level: 0 }), { ...analysts, bands, deviations })
    }
  })

  it("a flat window has bands of width 0, exactly — also after a spike has left it", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.double({ min: 1e-3, max: 1e9, noNaN: true }),
        FastCheck.double({ min: 1e-3, max: 1e9, noNaN: true }),
        FastCheck.integer({ min: 1, max: 30 }),
        FastCheck.integer({ min: 0, max: 100 }),
        (level, spike, period, before) => {
          const bands = new Indicators.Bollinger(period, 2)
          feed(bands, [...Array.from({ length: before }, () => level), spike])
          for (const b of feed(bands, Array.from({ length: 3 * period }, () => level)).slice(period - 1)) {
            expect(b!.upper - b!.lower).toBe(0)
            expect(near(b!.middle, level, 0)).toBe(true)
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("RSI(1) warms up on the second price (trading-signals' never does)", () => {
    expect(feed(new Indicators.Rsi(1), [1, 2, 2, 1, 3])).toEqual([undefined, 100, 100, 0, 100])
    const theirs = new RSI(1)
    expect([1, 2, 2, 1, 3].map((x) => theirs.add(x))).toEqual([null, null, null, null, null])
  })
})
