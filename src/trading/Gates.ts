/**
 * The hard gates no configuration disables — the seven of DESIGN.md and `money_range`, which keeps
 * the books inside Money's exact range — and the order arithmetic user rules share with them. Pure functions over plain data; each gate returns its outcome record (pass / reduce /
 * reject, with the reason, the limit and the measure). A strategy's `RiskLimits` only tighten a
 * gate: every gate takes the stricter of the strategy's value and the hard one, itself.
 *
 * Decisions (where the issue left room):
 * - The ledger's position (`context.portfolio`) is the truth, not the intent's `currentQuantity`.
 *   The traded symbol is re-marked at the intent's reference price; other positions keep the
 *   snapshot's marks. Equity for the per-order gates is the snapshot equity re-marked that way;
 *   the two breakers use the snapshot equity as is. Commission and slippage are not known here;
 *   the cash reserve is the buffer for them.
 * - An order is *risk-reducing* when, against the ledger's position, it moves the position toward
 *   zero without crossing it (a sell of at most the long held, a buy of at most the short held).
 *   The intent's `reason` is sizing's claim about a possibly stale position and does not make an
 *   order risk-reducing; it only matters to the two "beyond held" gates below.
 * - Cash reserve: the reserve is equity not committed to positions, equity − gross exposure. For a
 *   long-only book that is exactly the cash; a short commits equity equal to its market value (its
 *   sale proceeds are owed, and it needs as much collateral as a long of the same size), so a short
 *   sale uses up the reserve as a buy does, and buying to cover frees it.
 * - No selling beyond held: with shorting off, a sell is cut to the long held (rejected with none);
 *   an intent whose reason is `reduce` or `close` never sells beyond the long held, even with
 *   shorting on — a close does not open a short.
 * - No covering a short not held: a buy whose reason is `reduce` or `close` claims to cover a
 *   short; it is cut to the short held, and rejected when no short is held (held flat or long).
 *   Buys with reason `open`, `increase` or `reverse` are ordinary buys and pass this gate.
 * - Position cap, cash reserve and negative cash reduce to the largest quantity that passes (whole
 *   units, or multiples of 10⁻⁶ — the ledger's quantity grid — when fractional); the two "beyond
 *   held" gates reduce to the quantity held; the breakers pass or reject. Every reducing check's
 *   passing quantities are all those below a bound, so reductions compose: the final quantity of a
 *   check passes every gate and rule again.
 * - Breakers compare strictly: equity down *more than* the limit trips them. A tripped daily loss
 *   breaker still passes a risk-reducing order; a tripped drawdown halt passes nothing.
 * - Money comparisons are in micros; `notional` is `Money.notionalForComparison` (quantity × price
 *   rounded once, half to even, as the ledger books it), shared with Rules and RiskCheck. It has no
 *   range check: an order whose notional is past Money's exact range (a fixed quantity of billions)
 *   compares as too large and is cut down by the gates, where a checked product crashed the risk
 *   officer on every bar.
 * - Money's exact range (about ±9 billion, `money_range`): cash after the order must stay inside it.
 *   Only a sale can take it out (its proceeds raise cash; a buy is held to the cash there is), so
 *   the gate runs last, on what the others left, and reduces a sale to the largest quantity whose
 *   proceeds fit. It is recorded in a verdict only when it acts: every order of the books' usual
 *   size passes it, and a pass recorded in every verdict would change every run's events (and the
 *   replay of every recorded run) to say nothing.
 */
import type { OrderIntent } from "../../schemas/Order.js"
import type { Position } from "../../schemas/Portfolio.js"
import { HARD_LIMITS, type RiskContext, type RiskLimits } from "../../schemas/Risk.js"
import type { CheckResult, GateCheck, GateName, GateOutcome, MeasureUnit } from "../../schemas/Verdict.js"
import * as Money from "./Money.js"

// ---------------------------------------------------------------------------------------------
// Limits

/** The limits actually enforced: each the stricter of the strategy's and the hard value. */
export const effectiveLimits = (limits: RiskLimits): RiskLimits => ({
  maxPositionPct: Math.min(limits.maxPositionPct, HARD_LIMITS.maxPositionPct),
  minCashReservePct: Math.max(limits.minCashReservePct, HARD_LIMITS.minCashReservePct),
  dailyLossPct: Math.min(limits.dailyLossPct, HARD_LIMITS.dailyLossPct),
  maxDrawdownPct: Math.min(limits.maxDrawdownPct, HARD_LIMITS.maxDrawdownPct)
})

/** The hard values themselves, as limits. */
export const hardLimits: RiskLimits = { ...HARD_LIMITS }

// ---------------------------------------------------------------------------------------------
// Order facts and arithmetic (shared with Rules)

/** What every check needs to know about one intent, computed once per check. */
export interface OrderFacts {
  readonly intent: OrderIntent
  readonly context: RiskContext
  /** +1 for a buy, −1 for a sell. */
  readonly dir: 1 | -1
  readonly price: number
  /** The ledger's signed position in the symbol (0 when none). */
  readonly held: number
  /** Snapshot equity with the symbol re-marked at the reference price, micros. */
  readonly equity: number
  /** Gross exposure of every other symbol, micros. */
  readonly grossOther: number
  /** Quantity grid: 1 (whole units) or 10⁶ lots per unit (fractional, the ledger's grid). */
  readonly lotsPerUnit: number
}

/** Below this many positions a scan is cheaper than an index. */
const INDEX_FROM = 32

interface PositionIndex {
  readonly length: number
  readonly at: Map<string, number>
}

/**
 * Where each symbol sits in a snapshot's positions, for books too large to scan on every check (a
 * 100-symbol book made the scan most of a check's cost). A snapshot is an immutable message, so
 * the index is memoized per positions array, weakly; a hit is still checked against the array and
 * a changed length rebuilds it, so a ledger that reused an array would cost speed, not correctness.
 */
const indexes = new WeakMap<ReadonlyArray<Position>, PositionIndex>()

const indexOf = (positions: ReadonlyArray<Position>): PositionIndex => {
  const at = new Map<string, number>()
  for (let i = 0; i < positions.length; i++) {
    const symbol = positions[i]!.symbol
    if (!at.has(symbol)) at.set(symbol, i)
  }
  const index = { length: positions.length, at }
  indexes.set(positions, index)
  return index
}

/** The ledger's position in `symbol`, if any (the first one, should a book list a symbol twice). */
export const findPosition = (positions: ReadonlyArray<Position>, symbol: string): Position | undefined => {
  if (positions.length >= INDEX_FROM) {
    let index = indexes.get(positions)
    if (index === undefined || index.length !== positions.length) index = indexOf(positions)
    const i = index.at.get(symbol)
    if (i === undefined) return undefined
    const hit = positions[i]
    if (hit !== undefined && hit.symbol === symbol) return hit
    indexes.delete(positions)
  }
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i]!
    if (p.symbol === symbol) return p
  }
  return undefined
}

export const orderFacts = (intent: OrderIntent, context: RiskContext): OrderFacts => {
  const portfolio = context.portfolio
  const position = findPosition(portfolio.positions, intent.symbol)
  const held = position === undefined ? 0 : position.quantity
  const value = position === undefined ? 0 : position.marketValue
  const price = intent.referencePrice
  const remarked = held < 0 ? -notional(-held, price) : notional(held, price)
  return {
    intent,
    context,
    dir: intent.side === "buy" ? 1 : -1,
    price,
    held,
    equity: portfolio.equity - value + remarked,
    grossOther: portfolio.grossExposure - Math.abs(value),
    lotsPerUnit: context.allowFractional ? 1_000_000 : 1
  }
}

/**
 * quantity × price in micros, rounded once (half to even on the 10⁻⁶ quantity grid, as
 * `Money.notional`), without its range check: see the module comment.
 */
export const notional = (quantity: number, price: number): number => Money.notionalForComparison(quantity, price)

/** The position after `quantity` of this order. */
export const positionAfter = (f: OrderFacts, quantity: number): number => f.held + f.dir * quantity

/** Moves the position toward zero without crossing it. */
export const reducesExposure = (f: OrderFacts, quantity: number): boolean =>
  f.dir * f.held < 0 && quantity <= Math.abs(f.held)

/**
 * The largest quantity on the grid, at most `quantity` and at most about `bound`, that `ok`
 * accepts; 0 when there is none. `bound` comes from float arithmetic, so the exact check decides:
 * start one lot above it and step down.
 */
const fitDown = (f: OrderFacts, quantity: number, bound: number, ok: (q: number) => boolean): number => {
  const per = f.lotsPerUnit
  if (!(bound > 0)) return 0
  let lots = Math.min(Math.floor(quantity * per), Math.floor(bound * per) + 1)
  for (let tries = 0; lots > 0 && tries < 8; tries++, lots--) {
    if (ok(lots / per)) return lots / per
  }
  return 0
}

/** Largest quantity whose notional is at most `capMicros`. */
export const fitNotional = (f: OrderFacts, quantity: number, capMicros: number): number =>
  fitDown(f, quantity, capMicros / 1_000_000 / f.price, (q) => notional(q, f.price) <= capMicros)

/**
 * Largest quantity that either reduces exposure or leaves the position's notional × 100 at most
 * `capTimes100` (the cap is kept ×100 so percent limits compare exactly in integer micros).
 */
export const fitExposure = (f: OrderFacts, quantity: number, capTimes100: number): number => {
  const cap = capTimes100 / 100 / 1_000_000 / f.price
  const absHeld = Math.abs(f.held)
  const bound = f.dir * f.held < 0 ? absHeld + Math.max(cap, 0) : cap - absHeld
  return fitDown(f, quantity, bound, (q) =>
    reducesExposure(f, q) || notional(Math.abs(positionAfter(f, q)), f.price) * 100 <= capTimes100)
}

// ---------------------------------------------------------------------------------------------
// Formatting (shared with Rules and RiskCheck; only on the reduce and reject paths)

/** `x` with at most `decimals` decimals, trailing zeros dropped: `20`, `12.5`, `33.33`. */
const decimal = (x: number, decimals: number): string => {
  const s = x.toFixed(decimals)
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s
}

/** The most decimals a limit is shown with: a limit is a number a person gave, and has few. */
const LIMIT_DECIMALS = 6

/**
 * A measure and the limit it was compared with, as percents for a reason: the limit as given (to
 * `LIMIT_DECIMALS`), the measure with two decimals (or as many as the limit shows), and more as it
 * takes to fall on its own side of the shown limit. A 5.005 % daily loss read "daily loss 5% is
 * above the limit of 5%"; it reads 5.005, and a measure that tripped a limit never reads as equal to it.
 */
export const formatPercents = (actual: number, limit: number): { readonly actual: string; readonly limit: string } => {
  const shownLimit = decimal(limit, LIMIT_DECIMALS)
  const side = Math.sign(actual - limit)
  const point = shownLimit.indexOf(".")
  for (let decimals = Math.max(2, point < 0 ? 0 : shownLimit.length - point - 1); decimals <= 12; decimals++) {
    const shown = decimal(actual, decimals)
    if (Math.sign(Number(shown) - Number(shownLimit)) === side) return { actual: shown, limit: shownLimit }
  }
  return { actual: String(actual), limit: shownLimit }
}

/** Micros as a decimal amount of currency: `5000`, `99.95`, `-12.000001`. */
export const formatMoney = (micros: number): string => {
  const m = Math.round(micros)
  const abs = Math.abs(m)
  const units = Math.floor(abs / 1_000_000)
  const fraction = String(abs % 1_000_000).padStart(6, "0").replace(/0+$/, "")
  return `${m < 0 ? "-" : ""}${units}${fraction === "" ? "" : `.${fraction}`}`
}

// ---------------------------------------------------------------------------------------------
// Checks shared by gates and rules

/**
 * Builds one outcome record. Gates and rules each have one that adds who they are, so a check
 * allocates its record once (a check runs for every intent on the per-bar path).
 */
export type Emit<T> = (
  result: CheckResult,
  reason: string,
  limit: number | null,
  actual: number | null,
  unit: MeasureUnit | null,
  quantityBefore: number,
  quantityAfter: number
) => T

/** Reduced to `after` when it is positive, else rejected; the reason says which. */
export const reduceOrReject = <T>(
  emit: Emit<T>,
  what: string,
  quantity: number,
  after: number,
  limit: number,
  actual: number,
  unit: MeasureUnit
): T =>
  after > 0
    ? emit("reduce", `${what}; reduced from ${quantity} to ${after}`, limit, actual, unit, quantity, after)
    : emit("reject", `${what}; no smaller order fits`, limit, actual, unit, quantity, 0)

const RISK_REDUCING = "risk-reducing order: not limited"
const WITHIN = "within the limit"

const notPositiveEquity = <T>(emit: Emit<T>, f: OrderFacts, quantity: number, pct: number): T =>
  emit("reject", `equity is ${formatMoney(f.equity)}, not positive: only risk-reducing orders pass`, pct, null, "percent", quantity, 0)

/** Position notional after the order at most `pct` of equity. */
export const positionCheck = <T>(f: OrderFacts, quantity: number, pct: number, emit: Emit<T>): T => {
  if (reducesExposure(f, quantity)) return emit("pass", RISK_REDUCING, pct, null, "percent", quantity, quantity)
  if (f.equity <= 0) return notPositiveEquity(emit, f, quantity, pct)
  const value = notional(Math.abs(positionAfter(f, quantity)), f.price)
  const actual = value * 100 / f.equity
  const capTimes100 = pct * f.equity
  if (value * 100 <= capTimes100) return emit("pass", WITHIN, pct, actual, "percent", quantity, quantity)
  const shown = formatPercents(actual, pct)
  return reduceOrReject(
    emit,
    `position would be ${shown.actual}% of equity (limit ${shown.limit}%)`,
    quantity,
    fitExposure(f, quantity, capTimes100),
    pct,
    actual,
    "percent"
  )
}

/** Equity − gross exposure after the order at least `pct` of equity. */
export const reserveCheck = <T>(f: OrderFacts, quantity: number, pct: number, emit: Emit<T>): T => {
  if (reducesExposure(f, quantity)) return emit("pass", RISK_REDUCING, pct, null, "percent", quantity, quantity)
  if (f.equity <= 0) return notPositiveEquity(emit, f, quantity, pct)
  const reserve = f.equity - f.grossOther - notional(Math.abs(positionAfter(f, quantity)), f.price)
  const actual = reserve * 100 / f.equity
  if (reserve * 100 >= pct * f.equity) return emit("pass", WITHIN, pct, actual, "percent", quantity, quantity)
  const shown = formatPercents(actual, pct)
  return reduceOrReject(
    emit,
    `cash reserve would be ${shown.actual}% of equity (minimum ${shown.limit}%)`,
    quantity,
    fitExposure(f, quantity, (f.equity - f.grossOther) * 100 - pct * f.equity),
    pct,
    actual,
    "percent"
  )
}

// ---------------------------------------------------------------------------------------------
// The gates

const emitter = (gate: GateName): Emit<GateCheck> =>
(result, reason, limit, actual, unit, quantityBefore, quantityAfter) => ({
  gate,
  result,
  reason,
  limit,
  actual,
  unit,
  quantityBefore,
  quantityAfter
})

/** How a verdict records a gate's check: a pass keeps what it measured; a reduce or reject also why, and the quantities. */
export const recorded = (check: GateCheck): GateOutcome =>
  check.result === "pass"
    ? { gate: check.gate, result: "pass", limit: check.limit, actual: check.actual, unit: check.unit }
    : (check as GateCheck & { readonly result: "reduce" | "reject" })

const asDrawdown = emitter("max_drawdown_halt")
const asDailyLoss = emitter("daily_loss_breaker")
const asSellBeyond = emitter("no_sell_beyond_held")
const asCoverBeyond = emitter("no_cover_beyond_short")
const asMaxPosition = emitter("max_position")
const asCashReserve = emitter("min_cash_reserve")
const asNegativeCash = emitter("no_negative_cash")
const asMoneyRange = emitter("money_range")

/** Percent the equity is below `base` (0 when above, or when there is no positive base). */
const percentBelow = (equity: number, base: number): number => base > 0 && equity < base ? (base - equity) * 100 / base : 0

/** Equity (micros) more than the drawdown limit below its peak: the drawdown halt's test, on plain numbers. */
export const drawdownPast = (equity: number, peak: number, limits: RiskLimits): boolean => {
  const limit = Math.min(limits.maxDrawdownPct, HARD_LIMITS.maxDrawdownPct)
  return peak > 0 && (peak - equity) * 100 > limit * peak
}

/** Equity (micros) more than the daily loss limit below the day's start: the daily loss breaker's test, on plain numbers. */
export const dailyLossPast = (equity: number, dayStart: number, limits: RiskLimits): boolean => {
  const limit = Math.min(limits.dailyLossPct, HARD_LIMITS.dailyLossPct)
  return dayStart > 0 && (dayStart - equity) * 100 > limit * dayStart
}

export const drawdownTripped = (context: RiskContext, limits: RiskLimits): boolean =>
  drawdownPast(context.portfolio.equity, context.peakEquity, limits)

export const dailyLossTripped = (context: RiskContext, limits: RiskLimits): boolean =>
  dailyLossPast(context.portfolio.equity, context.dayStartEquity, limits)

/** Why the drawdown halt trips at these marks (the reason its gate and the transition it proposes give). */
export const drawdownReason = (equity: number, peak: number, limits: RiskLimits): string => {
  const limit = Math.min(limits.maxDrawdownPct, HARD_LIMITS.maxDrawdownPct)
  const shown = formatPercents(percentBelow(equity, peak), limit)
  return `equity ${formatMoney(equity)} is ${shown.actual}% below its peak of ${formatMoney(peak)} (limit ${shown.limit}%): trading halts`
}

/** Why the daily loss breaker trips at these marks, for an order that is not risk-reducing (or none). */
export const dailyLossReason = (equity: number, dayStart: number, limits: RiskLimits): string => {
  const limit = Math.min(limits.dailyLossPct, HARD_LIMITS.dailyLossPct)
  const shown = formatPercents(percentBelow(equity, dayStart), limit)
  return `equity ${formatMoney(equity)} is ${shown.actual}% below the day's start of ${
    formatMoney(dayStart)
  } (limit ${shown.limit}%): only risk-reducing orders pass`
}

/** Equity more than the limit below its peak: nothing passes, trading halts. */
export const maxDrawdownHalt = (f: OrderFacts, quantity: number, limits: RiskLimits): GateCheck => {
  const ctx = f.context
  const limit = Math.min(limits.maxDrawdownPct, HARD_LIMITS.maxDrawdownPct)
  const drawdown = percentBelow(ctx.portfolio.equity, ctx.peakEquity)
  if (!drawdownTripped(ctx, limits)) {
    return asDrawdown("pass", "drawdown within the limit", limit, drawdown, "percent", quantity, quantity)
  }
  return asDrawdown(
    "reject",
    drawdownReason(ctx.portfolio.equity, ctx.peakEquity, limits),
    limit,
    drawdown,
    "percent",
    quantity,
    0
  )
}

/** Equity more than the limit below the day's start: only risk-reducing orders pass, trading goes to `reducing`. */
export const dailyLossBreaker = (f: OrderFacts, quantity: number, limits: RiskLimits): GateCheck => {
  const ctx = f.context
  const limit = Math.min(limits.dailyLossPct, HARD_LIMITS.dailyLossPct)
  const loss = percentBelow(ctx.portfolio.equity, ctx.dayStartEquity)
  if (!dailyLossTripped(ctx, limits)) {
    return asDailyLoss("pass", "daily loss within the limit", limit, loss, "percent", quantity, quantity)
  }
  const shown = formatPercents(loss, limit)
  if (reducesExposure(f, quantity)) {
    return asDailyLoss(
      "pass",
      `daily loss ${shown.actual}% is above the limit of ${shown.limit}%; a risk-reducing order passes`,
      limit,
      loss,
      "percent",
      quantity,
      quantity
    )
  }
  return asDailyLoss(
    "reject",
    dailyLossReason(ctx.portfolio.equity, ctx.dayStartEquity, limits),
    limit,
    loss,
    "percent",
    quantity,
    0
  )
}

const isClosing = (intent: OrderIntent): boolean => intent.reason === "reduce" || intent.reason === "close"

/** No selling more than the long held, unless shorting is allowed (and never for a reduce or close). */
export const noSellBeyondHeld = (f: OrderFacts, quantity: number): GateCheck => {
  if (f.dir === 1) return asSellBeyond("pass", "not a sell", null, null, null, quantity, quantity)
  const closing = isClosing(f.intent)
  if (f.context.allowShort && !closing) {
    return asSellBeyond("pass", "shorting is allowed", null, null, null, quantity, quantity)
  }
  const long = Math.max(f.held, 0)
  if (quantity <= long) return asSellBeyond("pass", "sells at most the long held", long, quantity, "quantity", quantity, quantity)
  const held = long > 0 ? `only ${long} is held long` : "no long position is held"
  const what = closing
    ? `a ${f.intent.reason} sells ${quantity} but ${held}`
    : `sells ${quantity} but ${held} and shorting is not allowed`
  return long > 0
    ? asSellBeyond("reduce", `${what}; reduced to ${long}`, long, quantity, "quantity", quantity, long)
    : asSellBeyond("reject", what, long, quantity, "quantity", quantity, 0)
}

/** A buy to cover (reason `reduce` or `close`) covers at most the short held, and needs one. */
export const noCoverBeyondShort = (f: OrderFacts, quantity: number): GateCheck => {
  if (f.dir === -1 || !isClosing(f.intent)) {
    return asCoverBeyond("pass", "not a buy to cover", null, null, null, quantity, quantity)
  }
  const short = Math.max(-f.held, 0)
  if (quantity <= short) {
    return asCoverBeyond("pass", "covers at most the short held", short, quantity, "quantity", quantity, quantity)
  }
  if (short > 0) {
    return asCoverBeyond(
      "reduce",
      `a ${f.intent.reason} buys ${quantity} but only ${short} is held short; reduced to ${short}`,
      short,
      quantity,
      "quantity",
      quantity,
      short
    )
  }
  return asCoverBeyond(
    "reject",
    `a ${f.intent.reason} buys ${quantity} but no short position is held${f.held > 0 ? ` (${f.held} held long)` : ""}`,
    0,
    quantity,
    "quantity",
    quantity,
    0
  )
}

/** The position's notional after the order at most 50 % of equity (or the strategy's stricter cap). */
export const maxPosition = (f: OrderFacts, quantity: number, limits: RiskLimits): GateCheck =>
  positionCheck(f, quantity, Math.min(limits.maxPositionPct, HARD_LIMITS.maxPositionPct), asMaxPosition)

/** Equity − gross exposure after the order at least 10 % of equity (or the strategy's stricter reserve). */
export const minCashReserve = (f: OrderFacts, quantity: number, limits: RiskLimits): GateCheck =>
  reserveCheck(f, quantity, Math.max(limits.minCashReservePct, HARD_LIMITS.minCashReservePct), asCashReserve)

/** A buy costs at most the cash there is. */
export const noNegativeCash = (f: OrderFacts, quantity: number): GateCheck => {
  if (f.dir === -1) return asNegativeCash("pass", "a sell does not spend cash", null, null, null, quantity, quantity)
  const cash = f.context.portfolio.cash
  const cost = notional(quantity, f.price)
  if (cost <= cash) return asNegativeCash("pass", "within the cash held", cash, cost, "micros", quantity, quantity)
  return reduceOrReject(
    asNegativeCash,
    `costs ${formatMoney(cost)} but cash is ${formatMoney(cash)}`,
    quantity,
    cash > 0 ? fitNotional(f, quantity, cash) : 0,
    cash,
    cost,
    "micros"
  )
}

/** The most the books hold exactly: 2⁵³−1 micros, about 9,007,199,254 units (schemas/Money.ts). */
const MAX_MONEY = Money.maxValue as number

/**
 * Cash after the order inside Money's exact range (see the module comment): else reduced to the
 * largest quantity that keeps it there, or rejected when there is none.
 */
export const moneyRange = (f: OrderFacts, quantity: number): GateCheck => {
  const cash = f.context.portfolio.cash
  const value = notional(quantity, f.price)
  const after = cash - f.dir * value
  if (value <= MAX_MONEY && after <= MAX_MONEY && after >= -MAX_MONEY) {
    return asMoneyRange("pass", "within the exact money range", MAX_MONEY, after, "micros", quantity, quantity)
  }
  const most = `the most the books hold exactly (${formatMoney(MAX_MONEY)})`
  const what = after <= MAX_MONEY && after >= -MAX_MONEY
    ? `the order's notional of ${formatMoney(value)} is past ${most}`
    : `${f.dir === -1 ? "its proceeds" : "its cost"} of ${formatMoney(value)} would take cash from ${formatMoney(cash)} to ${
      formatMoney(after)
    }, past ${most}`
  const room = Math.min(MAX_MONEY, f.dir === -1 ? MAX_MONEY - cash : MAX_MONEY + cash)
  return reduceOrReject(asMoneyRange, what, quantity, room > 0 ? fitNotional(f, quantity, room) : 0, MAX_MONEY, after, "micros")
}

/** The five per-order gates in the order they run, after the rules, each on the quantity the previous one left. */
export const orderGates: ReadonlyArray<(f: OrderFacts, quantity: number, limits: RiskLimits) => GateCheck> = [
  noSellBeyondHeld,
  noCoverBeyondShort,
  maxPosition,
  minCashReserve,
  noNegativeCash
]
