/**
 * The system agent's `analyse_trades` tool, pure: a run's closed trades summarised overall and broken
 * down by symbol, side, hour and weekday of entry, holding period, position size and orders per day,
 * with the largest winners and losers. JSON as is (money in micros, `null` where a figure is undefined).
 * What a trade does not carry — the order that opened it, as the risk officer judged it — comes in
 * beside the trades (`Entry`, read by Tools.ts), so that rule suggestions measure what the rules see.
 */
import { Schema } from "effect"
import type { Timestamp } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import type { Weekday } from "../../schemas/Rule.js"
import type { Trade } from "../../schemas/Trade.js"
import type { Verdict } from "../../schemas/Verdict.js"
import * as Metrics from "../../src/trading/Metrics.js"
import * as Format from "./internal/Format.js"

// ---------------------------------------------------------------------------------------------
// Result

/** The statistics of a set of closed trades. A trade with P&L exactly 0 is neither a win nor a loss. */
export interface TradeStats {
  readonly trades: number
  readonly wins: number
  readonly losses: number
  readonly breakeven: number
  /** wins / trades; null without trades. */
  readonly winRate: number | null
  /** Sum of every trade's P&L. */
  readonly totalPnl: Money
  /** totalPnl / trades to the nearest micro (halves away from zero); null without trades. */
  readonly averagePnl: Money | null
  /** Sum of winning trades' P&L (≥ 0) and of losing trades' (≤ 0). */
  readonly grossProfit: Money
  readonly grossLoss: Money
  /** Null without such trades. */
  readonly averageWin: Money | null
  readonly averageLoss: Money | null
  /** grossProfit / −grossLoss; null without a losing trade. */
  readonly profitFactor: number | null
}

/** One bucket of a breakdown: which trades (`key`, and `label` as people read it) and their statistics. */
export interface Bucket<K> extends TradeStats {
  readonly key: K
  readonly label: string
}

export type Side = Trade["side"]

/** Entry to exit: `[0, 1 h)`, `[1 h, 1 d)`, `[1 d, 5 d)`, `[5 d, ∞)`. */
export type HoldingPeriod = "under_1h" | "1h_to_1d" | "1d_to_5d" | "5d_or_more"

/** A band of position size, above `minPercent` of equity and at most `maxPercent` (the last band has no maximum). */
export interface SizeBucket extends Bucket<string> {
  readonly minPercent: number
  readonly maxPercent: number | null
}

/** Trades whose entry was decided on UTC days with `key` orders (see `byOrdersPerDay`); `days` is how many such days. */
export interface OrdersPerDayBucket extends Bucket<number> {
  readonly days: number
}

/**
 * The instant `byHour` and `byWeekday` read: the entry fill's (`entry`), or the decision of the
 * order that opened the trade (`decision`), which is the time a `trading_hours` rule judges — with
 * `next_open` fills a Friday's decision enters on Monday.
 */
export type Clock = "entry" | "decision"

export interface TradeAnalysis {
  /** The IANA zone hours and weekdays of entry are read in. */
  readonly timeZone: string
  readonly clock: Clock
  /** The first entry and the last exit of the trades analysed (null without trades). */
  readonly firstEntryTs: Timestamp | null
  readonly lastExitTs: Timestamp | null
  readonly overall: TradeStats
  /** Worst total P&L first; ties by symbol. */
  readonly bySymbol: ReadonlyArray<Bucket<string>>
  /** `long`, then `short`. */
  readonly bySide: ReadonlyArray<Bucket<Side>>
  /** Hour of the day (0–23) the trade was entered (or its entry decided: `clock`), in `timeZone`; hours without trades are absent. */
  readonly byHour: ReadonlyArray<Bucket<number>>
  /** Weekday of entry (or of its decision: `clock`) in `timeZone`, Monday first. */
  readonly byWeekday: ReadonlyArray<Bucket<Weekday>>
  readonly byHoldingPeriod: ReadonlyArray<Bucket<HoldingPeriod>>
  /**
   * The position the entry order made, as a percent of equity when it was judged — what a
   * `max_position_percent` rule measures (`Entry.positionPercent`): a cap of `x` % cuts the
   * positions of the bands above `x`, and passes the others. Trades without that measure are left out.
   */
  readonly byPositionSize: ReadonlyArray<SizeBucket>
  /**
   * Trades by how busy the UTC day their entry order was decided on was: the run's orders that day,
   * as the risk officer counts them for `max_orders_per_day` (every order placed, a reversal one
   * order, those that only resized or closed a position too). Trades whose entry order is not known
   * (`AnalyseOptions.entries`) are left out.
   */
  readonly byOrdersPerDay: ReadonlyArray<OrdersPerDayBucket>
  /**
   * Trades by their entry order's place among the orders of its UTC day (1 for the day's first; a
   * label such as `3rd order of its day`): a cap of `n` orders a day would have refused the entries
   * placed after the first `n`. Trades whose entry order is not known are left out.
   */
  readonly byOrderOfDay: ReadonlyArray<Bucket<number>>
  /** The largest winning trades, largest first, and the largest losing trades, worst first (ties: earlier exit, then symbol). */
  readonly topWinners: ReadonlyArray<Trade>
  readonly topLosers: ReadonlyArray<Trade>
}

/** What the run recorded of the order that opened a trade (a fill names its order; the order, its decision). */
export interface Entry {
  /** When the order was decided: its decision bar's time, the `context.now` the risk officer's rules judged it at. */
  readonly decidedAt: Timestamp
  /** Its place among the run's orders decided on the same UTC day, in the order they were placed: 1 for the first. */
  readonly nthOfDay: number
  /** The run's orders decided on that UTC day, every one placed (a reversal is one order). */
  readonly ordersOfDay: number
  /**
   * The position after the order, as a percent of equity when it was judged, at the quantity placed:
   * what a `max_position_percent` rule measures (`positionPercentOf` its verdict); null when not recorded.
   */
  readonly positionPercent: number | null
}

export interface AnalyseOptions {
  /** How many winners and losers to list (default 5). */
  readonly top?: number
  /** IANA zone for hours and weekdays of entry (default `UTC`); an unknown zone is an `UnknownTimeZone` defect. */
  readonly timeZone?: string
  /** The opening order of each trade, keyed by the very trade objects analysed (Tools.ts reads them with the trades). */
  readonly entries?: ReadonlyMap<Trade, Entry>
  /**
   * What hours and weekdays are read from (default `entry`). `decision` reads a trade's entry order's
   * decision time, or its entry fill's time when `entries` has no order for it.
   */
  readonly clock?: Clock
}

/**
 * A time zone the ICU data does not know. Thrown (a defect): callers take zones from decoded input
 * (the tool's arguments and rules decode them with `TimeZone` from schemas/Rule.ts), so reaching it
 * is a bug in the caller.
 */
export class UnknownTimeZone extends Schema.TaggedError<UnknownTimeZone>()("UnknownTimeZone", {
  timeZone: Schema.String
}) {
  override get message(): string {
    return `unknown time zone ${JSON.stringify(this.timeZone.slice(0, 64))} (expected an IANA name such as "America/New_York")`
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** Nearest integer, halves away from zero: the rounding Metrics uses for its averages. */
const roundHalfAwayFromZero = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x))

/** The statistics of some trades, built on the metrics' own trade half so the two never disagree. */
export const statsOf = (trades: ReadonlyArray<Trade>): TradeStats => {
  const m = Metrics.tradeStats(trades)
  const total = m.grossProfit + m.grossLoss
  return {
    trades: m.tradeCount,
    wins: m.winningTrades,
    losses: m.losingTrades,
    breakeven: m.tradeCount - m.winningTrades - m.losingTrades,
    winRate: m.winRate,
    totalPnl: total as Money,
    averagePnl: m.tradeCount === 0 ? null : (roundHalfAwayFromZero(total / m.tradeCount) as Money),
    grossProfit: m.grossProfit,
    grossLoss: m.grossLoss,
    averageWin: m.averageWin,
    averageLoss: m.averageLoss,
    profitFactor: m.profitFactor
  }
}

/** The statistics of the union of disjoint sets of trades, from their statistics alone (equal to `statsOf` of all of them). */
export const combine = (parts: ReadonlyArray<TradeStats>): TradeStats => {
  let trades = 0
  let wins = 0
  let losses = 0
  let grossProfit = 0
  let grossLoss = 0
  for (const p of parts) {
    trades += p.trades
    wins += p.wins
    losses += p.losses
    grossProfit += p.grossProfit
    grossLoss += p.grossLoss
  }
  const total = grossProfit + grossLoss
  return {
    trades,
    wins,
    losses,
    breakeven: trades - wins - losses,
    winRate: trades === 0 ? null : wins / trades,
    totalPnl: total as Money,
    averagePnl: trades === 0 ? null : (roundHalfAwayFromZero(total / trades) as Money),
    grossProfit: grossProfit as Money,
    grossLoss: grossLoss as Money,
    averageWin: wins === 0 ? null : (roundHalfAwayFromZero(grossProfit / wins) as Money),
    averageLoss: losses === 0 ? null : (roundHalfAwayFromZero(grossLoss / losses) as Money),
    profitFactor: losses === 0 ? null : Number.isFinite(grossProfit / -grossLoss) ? grossProfit / -grossLoss : null
  }
}

// ---------------------------------------------------------------------------------------------
// Selecting

export interface TradeFilter {
  /** Compared without regard to case: operators and models write `aapl`. */
  readonly symbol?: string
  /** Trades closed at or after `from` and before `to` (epoch ms). */
  readonly from?: number
  readonly to?: number
}

/** The trades a tool call asks about: a symbol and a period of exits (a trade's P&L is realised when it closes). */
export const selectTrades = (trades: ReadonlyArray<Trade>, filter: TradeFilter): ReadonlyArray<Trade> => {
  const symbol = filter.symbol?.toUpperCase()
  return trades.filter((t) =>
    (symbol === undefined || t.symbol.toUpperCase() === symbol) &&
    (filter.from === undefined || t.exitTs >= filter.from) &&
    (filter.to === undefined || t.exitTs < filter.to)
  )
}

// ---------------------------------------------------------------------------------------------
// Breakdowns

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
const WEEKDAYS: ReadonlyArray<Weekday> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
const WEEKDAY_NAMES: { readonly [K in Weekday]: string } = {
  mon: "Monday",
  tue: "Tuesday",
  wed: "Wednesday",
  thu: "Thursday",
  fri: "Friday",
  sat: "Saturday",
  sun: "Sunday"
}

const HOLDING: ReadonlyArray<readonly [HoldingPeriod, string, number]> = [
  ["under_1h", "under 1 hour", HOUR_MS],
  ["1h_to_1d", "1 hour to 1 day", DAY_MS],
  ["1d_to_5d", "1 to 5 days", 5 * DAY_MS],
  ["5d_or_more", "5 days or more", Number.POSITIVE_INFINITY]
]

/** Band edges in percent of equity. Positions live below the 50 % hard limit, so the bands are finer there. */
export const SIZE_EDGES: ReadonlyArray<number> = [1, 2, 5, 10, 15, 20, 25, 30, 40, 50]

const holdingOf = (t: Trade): HoldingPeriod => {
  const held = t.exitTs - t.entryTs
  for (const [key, , below] of HOLDING) if (held < below) return key
  return "5d_or_more"
}

/** Above an edge is what a cap at it cuts: a position of exactly the cap passes it (the limit is inclusive). */
const sizeBand = (percent: number): number => {
  let band = 0
  while (band < SIZE_EDGES.length && percent > SIZE_EDGES[band]!) band++
  return band
}

const sizeLabel = (band: number): readonly [string, string, number, number | null] => {
  const min = band === 0 ? 0 : SIZE_EDGES[band - 1]!
  const max = band < SIZE_EDGES.length ? SIZE_EDGES[band]! : null
  const key = max === null ? `${min}+` : `${min}-${max}`
  const label = max === null
    ? `over ${min}% of equity`
    : band === 0
    ? `up to ${max}% of equity`
    : `over ${min}% to ${max}% of equity`
  return [key, label, min, max]
}

/**
 * The position after an order as a percent of equity, as `max_position_percent` measures it
 * (src/trading/Gates.ts `positionCheck`: at the reference price, of the equity re-marked at it),
 * at the quantity `placed`. Read off the verdict's `max_position` gate, which measured the same at
 * the quantity the checks before it left (its own `quantityBefore` when it acted; otherwise that of
 * the first later check that acted, as nothing in between changed it; otherwise the quantity
 * placed), scaled to the position placed. Rounded to a millionth of a percent, so that a position
 * sized to exactly a cap is not above it by a float's last digit. Null when the gate did not
 * measure it (a risk-reducing order).
 */
export const positionPercentOf = (verdict: Verdict, placed: number): number | null => {
  const gates = verdict.gates
  const at = gates.findIndex((g) => g.gate === "max_position")
  const gate = gates[at]
  if (gate === undefined || gate.actual === null) return null
  let measured = placed
  if (gate.result !== "pass") measured = gate.quantityBefore
  else {
    const later = gates.slice(at + 1).find((g) => g.result !== "pass")
    if (later !== undefined) measured = later.quantityBefore
  }
  const dir = verdict.intent.side === "buy" ? 1 : -1
  const held = verdict.intent.currentQuantity
  const after = Math.abs(held + dir * placed)
  const then = Math.abs(held + dir * measured)
  const percent = after === then ? gate.actual : then === 0 ? null : gate.actual * (after / then)
  return percent === null ? null : Math.round(percent * 1e6) / 1e6
}

const formatters = new Map<string, Intl.DateTimeFormat>()

const formatterOf = (timeZone: string): Intl.DateTimeFormat => {
  let f = formatters.get(timeZone)
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat("en-US", { timeZone, hour: "numeric", hourCycle: "h23", weekday: "short" })
    } catch {
      throw new UnknownTimeZone({ timeZone })
    }
    formatters.set(timeZone, f)
  }
  return f
}

/** The wall-clock hour and weekday of an instant in a zone. */
export const localHourAndWeekday = (ms: number, timeZone: string): readonly [number, Weekday] => {
  let hour = 0
  let weekday: Weekday = "mon"
  for (const part of formatterOf(timeZone).formatToParts(ms)) {
    if (part.type === "hour") hour = Number(part.value) % 24
    else if (part.type === "weekday") weekday = part.value.slice(0, 3).toLowerCase() as Weekday
  }
  return [hour, weekday]
}

/** `1st`, `2nd`, `3rd`, `4th`, …, `11th`, `21st`. */
export const ordinal = (n: number): string => {
  const tens = n % 100
  const suffix = tens >= 11 && tens <= 13 ? "th" : n % 10 === 1 ? "st" : n % 10 === 2 ? "nd" : n % 10 === 3 ? "rd" : "th"
  return `${n}${suffix}`
}

const hourLabel = (hour: number): string => `${String(hour).padStart(2, "0")}:00–${String(hour + 1).padStart(2, "0")}:00`

const group = <K>(trades: ReadonlyArray<Trade>, keyOf: (t: Trade) => K): Map<K, Array<Trade>> => {
  const groups = new Map<K, Array<Trade>>()
  for (const t of trades) {
    const k = keyOf(t)
    const g = groups.get(k)
    if (g === undefined) groups.set(k, [t])
    else g.push(t)
  }
  return groups
}

const bucket = <K>(key: K, label: string, trades: ReadonlyArray<Trade>): Bucket<K> => ({ key, label, ...statsOf(trades) })

/** Largest |P&L| first; ties by earlier exit, then symbol, so the order never depends on the input's. */
const byMagnitude = (a: Trade, b: Trade): number =>
  Math.abs(b.pnl) - Math.abs(a.pnl) || a.exitTs - b.exitTs || (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0)

/** Analyses closed trades; see `TradeAnalysis` for what each breakdown holds. No trades: zero counts, null figures, empty breakdowns. */
export const analyseTrades = (trades: ReadonlyArray<Trade>, options: AnalyseOptions = {}): TradeAnalysis => {
  const timeZone = options.timeZone ?? "UTC"
  formatterOf(timeZone) // an unknown zone fails here, even without trades
  const top = options.top !== undefined && Number.isFinite(options.top) ? Math.max(0, Math.floor(options.top)) : 5

  const clock = options.clock ?? "entry"
  const entries = options.entries
  const timeOf = clock === "decision" ? (t: Trade) => entries?.get(t)?.decidedAt ?? t.entryTs : (t: Trade) => t.entryTs
  const local = new Map<Trade, readonly [number, Weekday]>()
  for (const t of trades) local.set(t, localHourAndWeekday(timeOf(t), timeZone))

  const bySymbol = Array.from(group(trades, (t) => t.symbol as string), ([symbol, g]) => bucket(symbol, symbol, g)).sort((a, b) =>
    a.totalPnl - b.totalPnl || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  )

  const sides = group(trades, (t) => t.side)
  const bySide = (["long", "short"] as const).flatMap((side) => {
    const g = sides.get(side)
    return g === undefined ? [] : [bucket(side, side, g)]
  })

  const hours = group(trades, (t) => local.get(t)![0])
  const byHour = Array.from({ length: 24 }, (_, hour) => hour).flatMap((hour) => {
    const g = hours.get(hour)
    return g === undefined ? [] : [bucket(hour, hourLabel(hour), g)]
  })

  const days = group(trades, (t) => local.get(t)![1])
  const byWeekday = WEEKDAYS.flatMap((day) => {
    const g = days.get(day)
    return g === undefined ? [] : [bucket(day, WEEKDAY_NAMES[day], g)]
  })

  const holdings = group(trades, holdingOf)
  const byHoldingPeriod = HOLDING.flatMap(([key, label]) => {
    const g = holdings.get(key)
    return g === undefined ? [] : [bucket(key, label, g)]
  })

  const byPositionSize: Array<SizeBucket> = []
  if (entries !== undefined) {
    const sized = trades.filter((t) => (entries.get(t)?.positionPercent ?? null) !== null)
    const bands = group(sized, (t) => sizeBand(entries.get(t)!.positionPercent!))
    for (let band = 0; band <= SIZE_EDGES.length; band++) {
      const g = bands.get(band)
      if (g === undefined) continue
      const [key, label, minPercent, maxPercent] = sizeLabel(band)
      byPositionSize.push({ ...bucket(key, label, g), minPercent, maxPercent })
    }
  }

  // Only what the run recorded: counted from trades, a reversal looked like two orders and the
  // orders that only resized or closed a position were missing.
  const known = entries === undefined ? [] : trades.filter((t) => entries.has(t))
  const byBusyness = group(known, (t) => entries!.get(t)!.ordersOfDay)
  const byOrdersPerDay = Array.from(byBusyness.keys()).sort((a, b) => a - b).map((orders): OrdersPerDayBucket => {
    const g = byBusyness.get(orders)!
    const decisionDays = new Set(g.map((t) => Math.floor(entries!.get(t)!.decidedAt / DAY_MS))).size
    return { ...bucket(orders, `days with ${Format.count(orders, "order")}`, g), days: decisionDays }
  })
  const byPlace = group(known, (t) => entries!.get(t)!.nthOfDay)
  const byOrderOfDay = Array.from(byPlace.keys()).sort((a, b) => a - b).map((nth) =>
    bucket(nth, `${ordinal(nth)} order of its day`, byPlace.get(nth)!)
  )

  let firstEntryTs: number | null = null
  let lastExitTs: number | null = null
  for (const t of trades) {
    if (firstEntryTs === null || t.entryTs < firstEntryTs) firstEntryTs = t.entryTs
    if (lastExitTs === null || t.exitTs > lastExitTs) lastExitTs = t.exitTs
  }

  return {
    timeZone,
    clock,
    firstEntryTs: firstEntryTs as Timestamp | null,
    lastExitTs: lastExitTs as Timestamp | null,
    overall: statsOf(trades),
    bySymbol,
    bySide,
    byHour,
    byWeekday,
    byHoldingPeriod,
    byPositionSize,
    byOrdersPerDay,
    byOrderOfDay,
    topWinners: trades.filter((t) => t.pnl > 0).sort(byMagnitude).slice(0, top),
    topLosers: trades.filter((t) => t.pnl < 0).sort(byMagnitude).slice(0, top)
  }
}

// ---------------------------------------------------------------------------------------------
// Sentences

const statsSentence = (s: TradeStats): string =>
  `${Format.count(s.trades, "trade")}, ${s.wins} won and ${s.losses} lost` +
  (s.winRate === null ? "" : ` (win rate ${Format.percent(s.winRate)})`) +
  `, total P&L ${Format.pnl(s.totalPnl)}`

const tradeLine = (t: Trade): string => `${t.symbol} ${t.side} closed ${Format.time(t.exitTs)} (${Format.pnl(t.pnl)})`

/** The worst and best bucket of a breakdown, when it has two or more and they differ in sign or size. */
const extremes = <K>(what: string, buckets: ReadonlyArray<Bucket<K>>): string | undefined => {
  if (buckets.length < 2) return undefined
  let worst = buckets[0]!
  let best = buckets[0]!
  for (const b of buckets) {
    if (b.totalPnl < worst.totalPnl) worst = b
    if (b.totalPnl > best.totalPnl) best = b
  }
  if (worst === best) return undefined
  return `By ${what}, the worst was ${worst.label} (${Format.count(worst.trades, "trade")}, ${Format.pnl(worst.totalPnl)}) and the best ${best.label} (${
    Format.count(best.trades, "trade")
  }, ${Format.pnl(best.totalPnl)}).`
}

/** A few plain sentences for an operator, for when no model phrases the result. */
export const describeTradeAnalysis = (a: TradeAnalysis): string => {
  const o = a.overall
  if (o.trades === 0) return "There are no closed trades to analyse (for this selection): nothing was bought and sold back yet."
  const sentences: Array<string> = []
  sentences.push(
    `${statsSentence(o)}${o.breakeven > 0 ? `; ${o.breakeven} broke even` : ""}, between ${
      Format.time(a.firstEntryTs!)
    } and ${Format.time(a.lastExitTs!)}.`
  )
  const averages = [
    `Average P&L per trade ${Format.pnl(o.averagePnl!)}`,
    ...(o.averageWin === null ? [] : [`average win ${Format.pnl(o.averageWin)}`]),
    ...(o.averageLoss === null ? [] : [`average loss ${Format.pnl(o.averageLoss)}`])
  ]
  sentences.push(
    `${averages.join(", ")}; ${
      o.profitFactor === null ? "no losing trade, so no profit factor" : `profit factor ${Format.decimal(o.profitFactor)}`
    }.`
  )
  const of = a.clock === "decision" ? "the entry's decision" : "entry"
  const hourZone = `hour of ${of} (${a.timeZone})`
  for (
    const line of [
      extremes("symbol", a.bySymbol),
      extremes("side", a.bySide),
      extremes(hourZone, a.byHour),
      extremes(`weekday of ${of}`, a.byWeekday),
      extremes("holding period", a.byHoldingPeriod),
      extremes("position size", a.byPositionSize)
    ]
  ) if (line !== undefined) sentences.push(line)
  if (a.topLosers.length > 0) sentences.push(`Largest losses: ${a.topLosers.map(tradeLine).join("; ")}.`)
  if (a.topWinners.length > 0) sentences.push(`Largest wins: ${a.topWinners.map(tradeLine).join("; ")}.`)
  return sentences.join(" ")
}
