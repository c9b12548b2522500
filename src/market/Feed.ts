/**
 * A feed: what a run replays, one timestamp at a time. A slice holds every bar of one timestamp,
 * sorted by symbol (code-unit order), so batches are the same on every machine. Feeds are
 * iterables and may be lazy (a synthetic market generated as it goes keeps a run's memory flat
 * however long it is).
 *
 * Every feed built here can be iterated any number of times: each iteration starts again from the
 * first slice and gives the same slices (the loaded bars are kept; the synthetic market is drawn
 * again from its seed). A run iterates once.
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as Path from "node:path"
import type { Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import * as Csv from "./Csv.js"
import * as Synthetic from "./Synthetic.js"

export interface Slice {
  readonly ts: Timestamp
  /** At least one bar, all at `ts`, sorted by symbol, at most one per symbol. */
  readonly bars: ReadonlyArray<Bar>
}

export interface Feed extends Iterable<Slice> {
  /** Every symbol the feed can deliver, sorted. */
  readonly symbols: ReadonlyArray<Symbol>
  /**
   * Every symbol the data holds, sorted, before the window chose among them (default `symbols`):
   * what an error about a symbol the data lacks can tell people the data has.
   */
  readonly available?: ReadonlyArray<Symbol>
  /** What the data was: file names with their SHA-256, or the synthetic market's settings and seed. Recorded by the run. */
  readonly fingerprint: string
  /** The number of bars it delivers, when known in advance (progress bars). */
  readonly bars?: number
  /** The number of slices it delivers, when known in advance. */
  readonly slices?: number
  /**
   * The number of bars it delivers of each symbol, when known in advance: whether an analyst's
   * warm-up fits in the data (`Backtest.unwarmed`).
   */
  readonly barsBySymbol?: ReadonlyMap<Symbol, number>
  /** CSV rows the loader skipped, by file (every price and volume `null`: `Csv.Skipped`), for the caller to say so. */
  readonly skipped?: ReadonlyArray<Csv.Skipped>
  /** Sub-directories of the CSV directories given, not read (`Csv.Loaded.unread`), for the caller to say so. */
  readonly unread?: ReadonlyArray<string>
}

/** Which part of the data a feed delivers. Bounds are epoch ms UTC, both inclusive. */
export interface Window {
  readonly from?: number
  readonly to?: number
  /** Only these symbols (those the data does not have are ignored). Default: every symbol. */
  readonly symbols?: ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------
// Loaded bars

/**
 * The slices of loaded series (`Synthetic.generate`, tests), keeping the bars with
 * from ≤ ts ≤ to of the chosen symbols. Each series must be in ascending time. `bars` is always
 * known; `slices` when the series are aligned (every symbol has a bar at every time: one pass of
 * comparisons), otherwise it is left out rather than paid for with a merge.
 */
export const fromBars = (bars: Csv.Bars, options: Window & { readonly fingerprint: string }): Feed =>
  fromColumns(new Map([...bars].map(([symbol, series]) => [symbol, Csv.columnsOf(symbol, series)])), options)

/** `fromBars` for series kept as columns (`Csv.loadColumns`). */
export const fromColumns = (columns: Csv.ColumnsBySymbol, options: Window & { readonly fingerprint: string }): Feed => {
  const keep = options.symbols === undefined ? undefined : new Set<string>(options.symbols)
  const from = options.from ?? -Infinity
  const to = options.to ?? Infinity
  const selected: Array<Csv.Columns> = []
  const barsBySymbol = new Map<Symbol, number>()
  let count = 0
  for (const symbol of [...columns.keys()].sort(byCodeUnit)) {
    if (keep !== undefined && !keep.has(symbol)) continue
    const series = columns.get(symbol)!
    const lo = firstAtOrAfter(series.ts, from)
    const hi = firstAfter(series.ts, to)
    if (lo >= hi) continue
    selected.push(lo === 0 && hi === series.ts.length ? series : window(series, lo, hi))
    barsBySymbol.set(series.symbol, hi - lo)
    count += hi - lo
  }
  const symbols = selected.map((c) => c.symbol)
  const available = [...columns.keys()].sort(byCodeUnit)
  const fingerprint = options.fingerprint
  if (isAligned(selected)) {
    return {
      symbols,
      available,
      fingerprint,
      bars: count,
      slices: selected[0]?.ts.length ?? 0,
      barsBySymbol,
      [globalThis.Symbol.iterator]: () => new AlignedSlices(selected)
    }
  }
  // Unaligned: merged from bar objects, made once here.
  return { ...merged(symbols, available, fingerprint, count, new Map(selected.map((c) => [c.symbol, Csv.barsOf(c)]))), barsBySymbol }
}

/**
 * Unaligned series, merged as they are iterated. (A function of its own: a closure over the
 * columns made in `fromColumns` would keep them alive too.)
 */
const merged = (
  symbols: ReadonlyArray<Symbol>,
  available: ReadonlyArray<Symbol>,
  fingerprint: string,
  count: number,
  selected: Csv.Bars
): Feed => ({
  symbols,
  available,
  fingerprint,
  bars: count,
  [globalThis.Symbol.iterator]: () => new MergedSlices(Csv.merge(selected))
})

/** Rows [lo, hi) of a series (views, not copies). */
const window = (c: Csv.Columns, lo: number, hi: number): Csv.Columns => ({
  symbol: c.symbol,
  ts: c.ts.subarray(lo, hi),
  open: c.open.subarray(lo, hi),
  high: c.high.subarray(lo, hi),
  low: c.low.subarray(lo, hi),
  close: c.close.subarray(lo, hi),
  volume: c.volume.subarray(lo, hi)
})

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** The index of the first time ≥ t (binary search: the times ascend). */
const firstAtOrAfter = (ts: Float64Array, t: number): number => {
  let lo = 0
  let hi = ts.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ts[mid]! < t) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The index of the first time > t. */
const firstAfter = (ts: Float64Array, t: number): number => {
  let lo = 0
  let hi = ts.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ts[mid]! <= t) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Every series has a bar at exactly the same times (W2, the synthetic markets, most daily data). */
const isAligned = (series: ReadonlyArray<Csv.Columns>): boolean => {
  const first = series[0]
  if (first === undefined) return true
  for (let s = 1; s < series.length; s++) {
    const other = series[s]!.ts
    if (other.length !== first.ts.length) return false
    for (let i = 0; i < other.length; i++) if (other[i] !== first.ts[i]) return false
  }
  return true
}

/** Aligned series: slice i is bar i of every series, no merge needed. */
class AlignedSlices implements IterableIterator<Slice> {
  private i = 0
  constructor(private readonly series: ReadonlyArray<Csv.Columns>) {}

  [globalThis.Symbol.iterator]() {
    return this
  }

  next(): IteratorResult<Slice> {
    const series = this.series
    const i = this.i
    if (series.length === 0 || i >= series[0]!.ts.length) return { done: true, value: undefined }
    this.i = i + 1
    const bars = new Array<Bar>(series.length)
    const ts = series[0]!.ts[i]! as Timestamp
    for (let s = 0; s < series.length; s++) {
      const c = series[s]!
      bars[s] = { symbol: c.symbol, ts, open: c.open[i]!, high: c.high[i]!, low: c.low[i]!, close: c.close[i]!, volume: c.volume[i]! }
    }
    return { done: false, value: { ts, bars } }
  }
}

/** Any series: the merged bars (time order, ties by symbol) cut at each change of time. */
class MergedSlices implements IterableIterator<Slice> {
  private pending: Bar | undefined
  constructor(private readonly bars: Iterator<Bar>) {
    const first = bars.next()
    this.pending = first.done === true ? undefined : first.value
  }

  [globalThis.Symbol.iterator]() {
    return this
  }

  next(): IteratorResult<Slice> {
    const first = this.pending
    if (first === undefined) return { done: true, value: undefined }
    const group = [first]
    this.pending = undefined
    for (;;) {
      const r = this.bars.next()
      if (r.done === true) break
      if (r.value.ts !== first.ts) {
        this.pending = r.value
        break
      }
      group.push(r.value)
    }
    return { done: false, value: { ts: first.ts, bars: group } }
  }
}

// ---------------------------------------------------------------------------------------------
// CSV files

/**
 * `Csv.load` (a directory stands for its `*.csv` files) as a feed, with a fingerprint naming every
 * file by its name (not its path, so moving the data does not change it) and the SHA-256 of its
 * bytes, sorted by name, then the window and any price adjustment:
 * `csv:ACME.csv=sha256:<hex>,GLOBEX.csv=sha256:<hex> from=2022-01-03T00:00:00.000Z`.
 * Each file is read once: the digest is of the bytes that were parsed.
 */
export const load = (
  paths: ReadonlyArray<string>,
  options: Window & { readonly parse?: Csv.ParseOptions } = {}
): Effect.Effect<Feed, Csv.CsvError> =>
  Effect.gen(function*() {
    const loaded = yield* Csv.loadColumns(paths, options.parse)
    const digests = loaded.files.map(({ file, sha256 }) => `${Path.basename(file)}=sha256:${sha256}`)
    const extra = [
      ...(options.from === undefined ? [] : [`from=${instant(options.from)}`]),
      ...(options.to === undefined ? [] : [`to=${instant(options.to)}`]),
      ...(options.symbols === undefined ? [] : [`symbols=${[...new Set(options.symbols)].sort(byCodeUnit).join("|")}`]),
      ...(options.parse?.adjust === "adjClose" ? ["adjust=adjClose"] : [])
    ]
    const fingerprint = ["csv:" + [...digests].sort(byCodeUnit).join(","), ...extra].join(" ")
    const feed = fromColumns(loaded.columns, { ...options, fingerprint })
    return {
      ...feed,
      ...(loaded.skipped.length === 0 ? {} : { skipped: loaded.skipped }),
      ...(loaded.unread.length === 0 ? {} : { unread: loaded.unread })
    }
  }).pipe(Effect.withSpan("Feed.load", { attributes: { paths: paths.join(",") } }))

/** ISO 8601 when the number is a time `Date` can print, else the number as written. */
const instant = (ms: number): string => {
  const date = new Date(ms)
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString()
}

// ---------------------------------------------------------------------------------------------
// Synthetic markets

/**
 * The market `Synthetic.generate(config)` describes, drawn one time at a time as the run consumes
 * it (`Synthetic.steps`): the same bars, but memory stays flat however many there are. A symbol
 * listed twice in the config is delivered once, with the bars of its last entry (as `generate`'s
 * map keeps them). Fingerprint: `synthetic:seed=…,symbols=A|B|…,bars=…,start=…,intervalMs=…,config=sha256:…`
 * — the hash covers the whole configuration (regimes, volatility, …), the rest is for people.
 */
export const synthetic = (config: Synthetic.Config): Feed => {
  // The config's index delivering each distinct symbol, in symbol order.
  const last = new Map<Symbol, number>()
  config.symbols.forEach((symbol, i) => last.set(symbol, i))
  const symbols = [...last.keys()].sort(byCodeUnit)
  const order = symbols.map((symbol) => last.get(symbol)!)
  const identity = order.every((index, i) => index === i) && order.length === config.symbols.length
  const fingerprint = `synthetic:seed=${config.seed},symbols=${config.symbols.join("|")},bars=${config.bars},` +
    `start=${instant(config.start)},intervalMs=${config.intervalMs},config=sha256:${
      createHash("sha256").update(canonicalJson(config)).digest("hex").slice(0, 16)
    }`
  return {
    symbols,
    fingerprint,
    bars: symbols.length * config.bars,
    slices: config.bars,
    barsBySymbol: new Map(symbols.map((symbol) => [symbol, config.bars])),
    [globalThis.Symbol.iterator]: function*(): Generator<Slice> {
      for (const step of Synthetic.steps(config)) {
        yield { ts: step.ts, bars: identity ? step.bars : order.map((i) => step.bars[i]!) }
      }
    }
  }
}

/** JSON with object keys sorted, so two equal configurations written in another key order hash the same. */
const canonicalJson = (value: unknown): string =>
  Array.isArray(value)
    ? `[${value.map(canonicalJson).join(",")}]`
    : typeof value === "object" && value !== null
    ? `{${
      Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(",")
    }}`
    : JSON.stringify(value) ?? "null"
