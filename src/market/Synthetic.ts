/**
 * Seeded synthetic markets, for demos, tests and benchmarks: a pure function of a configuration and
 * a seed (no Math.random, no clock), so the same seed gives byte-identical bars on every run.
 *
 * - `generate`: a regime-switching random walk. A market-wide regime (bull / bear / sideways by
 *   default) follows a Markov chain; each regime has its own drift, volatility and volume level.
 *   Symbols share a market factor (correlated returns) plus their own noise; volume is log-normal,
 *   rises with the size of the move, and surges now and then (a surge bar also moves more), so a
 *   volume-surge analyst has something to find. Bars are OHLC-consistent: open = previous close ×
 *   a small gap, high ≥ max(open, close), low ≤ min(open, close), also after rounding.
 * - `steps`: the same market one time at a time, drawn as it goes (flat memory for long feeds).
 * - `sample`: the fixed configuration behind the CSV files in `data/` (see data/README.md).
 * - `w2Csv`: backtrader's W2 benchmark files, exactly as ../shared/W2.md specifies them.
 *
 * Reproducibility across machines rests on mulberry32 (integer arithmetic) and V8's Math.exp, log,
 * sqrt and cos, which are deterministic ports of fdlibm, not the platform's libm.
 */
import { Schema } from "effect"
import { Symbol, type Timestamp } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import * as Csv from "./Csv.js"
import * as Prng from "./Prng.js"

/** One state of the market-wide regime chain. Drift and volatility are per bar, in log-return terms. */
export const Regime = Schema.Struct({
  name: Schema.NonEmptyString,
  /** Mean log return per bar (0.0005 per daily bar ≈ 13% a year). */
  drift: Schema.Number.pipe(Schema.finite()),
  /** Standard deviation of the log return per bar (0.01 per daily bar ≈ 16% a year). */
  volatility: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  /** Volume level relative to the symbol's base volume. */
  volume: Schema.Number.pipe(Schema.finite(), Schema.positive())
})
export type Regime = typeof Regime.Type

const Probability = Schema.Number.pipe(Schema.finite(), Schema.between(0, 1))
const PositiveInt = Schema.Int.pipe(Schema.positive())

export const Config = Schema.Struct({
  seed: Schema.Int,
  symbols: Schema.NonEmptyArray(Symbol),
  /** Bars per symbol. */
  bars: Schema.Int.pipe(Schema.nonNegative()),
  /** Epoch ms UTC of the first bar. */
  start: Schema.Int,
  /** Bar spacing in ms: 86_400_000 for daily bars, 900_000 for 15-minute bars. */
  intervalMs: PositiveInt,
  /** Skip Saturdays and Sundays (a bar that would fall on one moves to Monday). */
  weekdaysOnly: Schema.Boolean,
  regimes: Schema.NonEmptyArray(Regime),
  /** Markov chain: `transitions[i][j]` is the chance of going from regime i to regime j at the next bar; rows sum to 1. */
  transitions: Schema.Array(Schema.Array(Probability)),
  /** Index of the regime of the first bar. */
  initialRegime: Schema.Int.pipe(Schema.nonNegative()),
  /** Share of each symbol's return variance that comes from the market factor (≈ the correlation between two symbols). */
  marketWeight: Probability,
  /** Start prices are drawn log-uniformly from this range. */
  startPrice: Schema.Tuple(Schema.Number.pipe(Schema.positive()), Schema.Number.pipe(Schema.positive())),
  /** Base volumes are drawn log-uniformly from this range. */
  baseVolume: Schema.Tuple(Schema.Number.pipe(Schema.positive()), Schema.Number.pipe(Schema.positive())),
  /** Open = previous close × exp(gap × volatility × N(0,1)). */
  gap: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  /** Wicks: high = max(open, close) × exp(wick × volatility × |N(0,1)|), low likewise below. */
  wick: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  /** Standard deviation of the log-volume noise. */
  volumeNoise: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  /** Chance per bar and symbol of a volume surge. */
  surgeProbability: Probability,
  /** A surge multiplies volume by a uniform draw from this range, and the bar's volatility by 2. */
  surgeMultiplier: Schema.Tuple(Schema.Number.pipe(Schema.positive()), Schema.Number.pipe(Schema.positive())),
  /** Round prices to this many decimals (the tick is 10^-decimals, and no price goes below one tick); volume to whole units. */
  decimals: Schema.Int.pipe(Schema.between(0, 8))
}).pipe(
  Schema.filter((c) =>
    c.transitions.length !== c.regimes.length ||
      c.transitions.some((row) => row.length !== c.regimes.length || Math.abs(row.reduce((a, b) => a + b, 0) - 1) > 1e-9)
      ? "transitions must be a square matrix over the regimes whose rows each sum to 1"
      : c.initialRegime >= c.regimes.length
      ? "initialRegime must index a regime"
      : c.startPrice[0] > c.startPrice[1] || c.baseVolume[0] > c.baseVolume[1] || c.surgeMultiplier[0] > c.surgeMultiplier[1]
      ? "a range [a, b] needs a ≤ b"
      : undefined
  )
)
export type Config = typeof Config.Type

/** Daily bars from 2020-01-06 (a Monday), weekdays only; three regimes with expected spells of about 20, 33 and 17 bars. */
export const defaults: Config = {
  seed: 1,
  symbols: ["SYNA" as Symbol],
  bars: 500,
  start: Date.UTC(2020, 0, 6),
  intervalMs: 86_400_000,
  weekdaysOnly: true,
  regimes: [
    { name: "sideways", drift: 0, volatility: 0.008, volume: 0.8 },
    { name: "bull", drift: 0.0012, volatility: 0.011, volume: 1 },
    { name: "bear", drift: -0.0018, volatility: 0.022, volume: 1.5 }
  ],
  transitions: [
    [0.95, 0.03, 0.02],
    [0.02, 0.97, 0.01],
    [0.03, 0.03, 0.94]
  ],
  initialRegime: 0,
  marketWeight: 0.5,
  startPrice: [20, 200],
  baseVolume: [200_000, 5_000_000],
  gap: 0.3,
  wick: 0.5,
  volumeNoise: 0.25,
  surgeProbability: 0.02,
  surgeMultiplier: [3, 6],
  decimals: 2
}

/** A generated market: the bars per symbol, and what drove them (for tests and for labelling a demo). */
export interface Market {
  readonly bars: Csv.Bars
  /** The regime index of each bar (the same for every symbol: the regime is market-wide). */
  readonly regimes: ReadonlyArray<number>
  /** Per symbol, the indexes of the bars with a volume surge. */
  readonly surges: ReadonlyMap<Symbol, ReadonlyArray<number>>
}

const DAY_MS = 86_400_000

/** Generate a market from a decoded configuration (`Schema.decodeUnknown(Config)` checks one from a file). */
export const generate = (config: Config): Market => {
  const series = config.symbols.map((): Array<Bar> => [])
  const surges = config.symbols.map((): Array<number> => [])
  const regimes: Array<number> = []
  for (const step of steps(config)) {
    regimes.push(step.regime)
    for (let s = 0; s < step.bars.length; s++) series[s]!.push(step.bars[s]!)
    for (const s of step.surges) surges[s]!.push(step.index)
  }
  return {
    bars: new Map(config.symbols.map((sym, i) => [sym, series[i]!])),
    regimes,
    surges: new Map(config.symbols.map((sym, i) => [sym, surges[i]!]))
  }
}

/** One time of a generated market: every symbol's bar at `ts`, in the order of `config.symbols`. */
export interface Step {
  /** The bar number, 0 to `config.bars - 1`. */
  readonly index: number
  readonly ts: Timestamp
  /** The market-wide regime of this bar. */
  readonly regime: number
  /** One bar per entry of `config.symbols`, in that order. A fresh array each step: the consumer may keep it. */
  readonly bars: ReadonlyArray<Bar>
  /** Indexes into `config.symbols` of the bars with a volume surge (usually none). */
  readonly surges: ReadonlyArray<number>
}

/**
 * The market one time at a time, drawing as it goes: memory stays flat however many bars, which is
 * what a long synthetic backtest needs. `generate` is this, collected; each call starts over from
 * the seed, so two iterations give the same bars.
 */
export const steps = (config: Config): IterableIterator<Step> => new Steps(config)

const NO_SURGES: ReadonlyArray<number> = []

class Steps implements IterableIterator<Step> {
  private readonly rng: Prng.Prng
  private readonly tick: number
  private readonly scale: number
  private readonly prevClose: Array<number>
  private readonly baseVolume: Array<number>
  private readonly wm: number
  private readonly wi: number
  private regime: number
  private ts: number
  private t = 0

  constructor(private readonly config: Config) {
    const rng = Prng.make(config.seed)
    this.rng = rng
    this.tick = 10 ** -config.decimals
    this.scale = 10 ** config.decimals
    const logUniform = ([a, b]: readonly [number, number]) => a * Math.exp(rng.nextFloat() * Math.log(b / a))
    // Per-symbol constants first, then bar by bar: adding bars never changes earlier ones.
    this.prevClose = config.symbols.map(() => this.price(logUniform(config.startPrice)))
    this.baseVolume = config.symbols.map(() => logUniform(config.baseVolume))
    this.wm = Math.sqrt(config.marketWeight)
    this.wi = Math.sqrt(1 - config.marketWeight)
    this.regime = config.initialRegime
    this.ts = config.start
  }

  /**
   * The price on the tick grid, as the double a CSV reader gets back from the printed price, so
   * files round-trip exactly. It is `Number(max(tick, round(v / tick) * tick).toFixed(decimals))`
   * (what this generator has always produced) computed as `max(1, round(v / tick)) / 10^decimals`:
   * toFixed prints the integer k of ticks exactly, Number reads back the double nearest k / 10^d,
   * and IEEE division of two exact integers is that same double. Half the cost of a bar otherwise.
   */
  private price(v: number): number {
    const k = Math.max(1, Math.round(v / this.tick))
    return Number.isSafeInteger(k)
      ? k / this.scale
      : Number(Math.max(this.tick, Math.round(v / this.tick) * this.tick).toFixed(this.config.decimals))
  }

  [globalThis.Symbol.iterator]() {
    return this
  }

  next(): IteratorResult<Step> {
    const config = this.config
    const t = this.t
    if (t >= config.bars) return { done: true, value: undefined }
    this.t = t + 1
    const rng = this.rng
    if (t > 0) {
      this.regime = nextRegime(config.transitions[this.regime]!, rng.nextFloat())
      this.ts += config.intervalMs
    }
    if (config.weekdaysOnly) this.ts = skipWeekend(this.ts)
    const ts = this.ts as Timestamp
    const r = config.regimes[this.regime]!
    const market = rng.nextNormal()
    const n = config.symbols.length
    const bars = new Array<Bar>(n)
    let surges = NO_SURGES as Array<number>
    for (let s = 0; s < n; s++) {
      // A fixed number of draws per symbol and bar, whatever the branch, so streams stay aligned.
      const own = rng.nextNormal()
      const gapDraw = rng.nextNormal()
      const highDraw = Math.abs(rng.nextNormal())
      const lowDraw = Math.abs(rng.nextNormal())
      const volumeDraw = rng.nextNormal()
      const surgeDraw = rng.nextFloat()
      const surgeSize = rng.nextFloat()
      const surge = surgeDraw < config.surgeProbability
      const vol = r.volatility * (surge ? 2 : 1)
      const shock = this.wm * market + this.wi * own
      const prev = this.prevClose[s]!
      const open = this.price(prev * Math.exp(config.gap * vol * gapDraw))
      const close = this.price(prev * Math.exp(r.drift + vol * shock))
      const high = this.price(Math.max(open, close) * Math.exp(config.wick * vol * highDraw))
      const low = this.price(Math.min(open, close) * Math.exp(-config.wick * vol * lowDraw))
      let volume = this.baseVolume[s]! * r.volume * (1 + 0.5 * Math.abs(shock)) *
        Math.exp(config.volumeNoise * volumeDraw - config.volumeNoise * config.volumeNoise / 2)
      if (surge) {
        const [a, b] = config.surgeMultiplier
        volume *= a + (b - a) * surgeSize
        if (surges === NO_SURGES) surges = []
        surges.push(s)
      }
      bars[s] = { symbol: config.symbols[s]!, ts, open, high, low, close, volume: Math.round(volume) }
      this.prevClose[s] = close
    }
    return { done: false, value: { index: t, ts, regime: this.regime, bars, surges } }
  }
}

const nextRegime = (row: ReadonlyArray<number>, u: number): number => {
  let acc = 0
  for (let j = 0; j < row.length; j++) {
    acc += row[j]!
    if (u < acc) return j
  }
  return row.length - 1
}

/** Move a Saturday or Sunday time to the Monday at the same time of day. */
const skipWeekend = (ts: number): number => {
  const weekday = (Math.floor(ts / DAY_MS) + 4) % 7 // 1970-01-01 was a Thursday; 0 = Sunday
  const w = weekday < 0 ? weekday + 7 : weekday
  return w === 6 ? ts + 2 * DAY_MS : w === 0 ? ts + DAY_MS : ts
}

// ---------------------------------------------------------------------------------------------
// The sample under data/

/** The configuration of the committed sample: 3 fictional symbols × 500 daily bars from 2022-01-03. */
export const sampleConfig: Config = {
  ...defaults,
  seed: 20240105,
  symbols: ["ACME" as Symbol, "GLOBEX" as Symbol, "INITECH" as Symbol],
  bars: 500,
  start: Date.UTC(2022, 0, 3)
}

/** The sample's files: name → CSV text (`date,open,high,low,close,volume`, prices with 2 decimals). */
export const sample = (): ReadonlyMap<string, string> => {
  const market = generate(sampleConfig)
  return new Map([...market.bars].map(([symbol, bars]) => [`${symbol}.csv`, Csv.format(bars, { decimals: 2 })]))
}

// ---------------------------------------------------------------------------------------------
// W2: backtrader's "2 million candles" files (../shared/W2.md)

export const W2_FILES = 100
export const W2_ROWS = 20_000
export const W2_HEADER = "datetime,open,high,low,close,volume,openinterest\n"

/** `candles00.csv` … `candles99.csv`. */
export const w2FileName = (i: number): string => `candles${String(i).padStart(2, "0")}.csv`

/** The 10 values a W2 field can take, `k * 1.01` for k in 10..19, printed as JavaScript prints them. */
const W2_VALUES = Array.from({ length: 10 }, (_, j) => String((10 + j) * 1.01))
const W2_START = Date.UTC(2010, 0, 1)
const W2_STEP = 15 * 60_000
/** `HH:MM:SS` of the 96 quarter hours of a day. */
const W2_TIMES = Array.from({ length: DAY_MS / W2_STEP }, (_, q) => new Date(q * W2_STEP).toISOString().slice(11, 19))

/** The text of W2 file `i` (0..99), with `rows` rows (20,000 in the benchmark). */
export const w2Csv = (i: number, rows: number = W2_ROWS): string => {
  const rng = Prng.make((20191025 + i) >>> 0)
  const parts: Array<string> = [W2_HEADER]
  let day = ""
  for (let r = 0; r < rows; r++) {
    const q = r % W2_TIMES.length
    if (q === 0 || r === 0) day = new Date(W2_START + r * W2_STEP).toISOString().slice(0, 10)
    let line = `${day} ${W2_TIMES[q]!}`
    for (let c = 0; c < 6; c++) {
      // k = 10 + floor(out * 10 / 2^32): out * 10 < 2^36, exact in a double.
      line += "," + W2_VALUES[Math.floor((rng.nextUint32() * 10) / 4294967296)]!
    }
    parts.push(line + "\n")
  }
  return parts.join("")
}
