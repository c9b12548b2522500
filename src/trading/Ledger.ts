/**
 * The books of one run — cash, signed positions, realized P&L, closed trades — as an immutable value
 * that only `applyFill` changes. The ledger books what was filled; refusing orders (selling more
 * than held, negative cash) is the risk gates' business, before the order exists.
 *
 * Exactness. Cash, cost bases and P&L are integer micros (`Money`); quantities are integer
 * micro-units (10⁻⁶), so adding and reducing positions is exact and flat is exactly 0. A position
 * keeps its cost basis (the signed entry notional of the open quantity) rather than an average
 * price; the average price is derived from it. Closing part of a position releases the same share
 * of the cost basis (rounded half to even, once) and the rest stays, so these hold exactly, in
 * micros, after any sequence of fills:
 *   cash = initial − Σ buy notionals + Σ sell notionals − Σ commissions
 *   equity = cash + Σ notional(quantity, mark)            (each market value rounded once)
 *   realized + unrealized = equity − initial cash          (unrealized = market value − cost basis)
 *
 * Cash of a short: a short sale credits its notional minus commission (cash can rise), and the
 * position's negative market value is the liability, so equity does not rise. Commissions are
 * realized P&L when paid (an opening commission is a realized loss at once).
 *
 * Exactly once: a fill's id is recorded when it is booked; booking an id already recorded returns
 * the very same state object (not an error). The record is an append-only log shared by successive
 * states, with each state knowing its length (as a Go slice shares its array): the newest state
 * appends in place, O(1); extending an older state copies its prefix first, so every state keeps
 * answering as it did. Closed trades use the same log. Positions are an array of per-symbol books
 * indexed by a slot shared between states; a fill copies that array (a memcpy of one pointer per
 * symbol ever traded) and nothing else.
 */
import { Either } from "effect"
import { describeValue, FillRejected } from "../../schemas/Execution.js"
import type { Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import type { Fill } from "../../schemas/Order.js"
import type { PortfolioSnapshot, Position } from "../../schemas/Portfolio.js"
import type { Trade } from "../../schemas/Trade.js"
import * as M from "./Money.js"

// ---------------------------------------------------------------------------------------------
// State

/** One symbol's position. Immutable; replaced on every fill of the symbol. */
export interface Book {
  readonly symbol: Symbol
  /** Signed quantity in micro-units (10⁻⁶): negative when short, exactly 0 when flat. */
  readonly quantity: number
  /** Signed entry notional of the open quantity (negative when short), 0 when flat. */
  readonly cost: Money
  /** Realized P&L on this symbol since the run began, commissions included. */
  readonly realizedPnl: Money
  readonly commissions: Money
  /** The last fill's price: the mark when no price is given for the symbol. */
  readonly lastPrice: number
  /** The round trip in progress (meaningless when flat). */
  readonly trip: Trip
}

/** What a closed `Trade` is built from, accumulated while a position is open. */
interface Trip {
  readonly entryTs: Timestamp
  /** Largest absolute quantity reached, micro-units. */
  readonly maxQuantity: number
  /** Σ price × quantity and Σ quantity (micro-units) of the opening and the closing fills: for the average prices reported, never for cash. */
  readonly entryValue: number
  readonly entryQuantity: number
  readonly exitValue: number
  readonly exitQuantity: number
  /** Realized P&L of the closed parts before commissions, and the commissions of the trip's fills. */
  readonly gross: Money
  readonly commission: Money
}

/**
 * The append-only record behind exactly-once, shared by successive states (see the module comment):
 * where in the log each fill id was recorded. The execution desk's ids are `<order id>:fill` with
 * order ids `<symbol>@<decision time>`, and one symbol's come in the order of their decision times:
 * those are kept by their prefix (the text before the `@`) as ascending numbers (`Series`). An id
 * past its prefix's last — every new fill of a run — is then known new from a short series, not
 * from a probe of a table with an entry per fill of the run (on a long run, misses in memory on
 * every fill, and an id string per fill kept alive). Every other id — another shape, or not past
 * its prefix's last — is in `index`. An id of that shape goes there only when its series exists
 * and ends at or past it, and a series only grows: so an id past the last of its prefix's series
 * was never recorded, in either. Any id keeps the guarantee; the desk's are answered cheaply.
 */
interface FillLog {
  /** The ids not in a series. */
  readonly index: Map<string, number>
  /** By prefix, the ids `<prefix>@<n>:fill` recorded in ascending `n`, each with where it was recorded. */
  readonly series: Map<string, Series>
  /** How many ids were recorded, in both: a state whose fill count is less extends a copy. */
  size: number
}

interface Series {
  readonly numbers: Array<number>
  /** Where each of `numbers` was recorded: ascending too (a series is appended to in log order). */
  readonly at: Array<number>
}

const SERIES_SUFFIX = ":fill"

/**
 * Where the `@` of an id `<prefix>@<n>:fill` is — `n` in canonical decimal (no sign, no leading
 * zero), at most 15 digits, so that the id and its prefix and number say the same —, or -1 when the
 * id is not of that shape.
 */
const seriesAt = (id: string): number => {
  const end = id.length - SERIES_SUFFIX.length
  if (end < 2 || !id.endsWith(SERIES_SUFFIX)) return -1
  const at = id.lastIndexOf("@", end - 1)
  const digits = end - at - 1
  if (at < 0 || digits < 1 || digits > 15 || (digits > 1 && id.charCodeAt(at + 1) === 48)) return -1
  for (let i = at + 1; i < end; i++) {
    const c = id.charCodeAt(i)
    if (c < 48 || c > 57) return -1
  }
  return at
}

/** The `n` of an id `seriesAt` found the `@` of. */
const seriesNumber = (id: string, at: number): number => {
  let n = 0
  for (let i = at + 1, end = id.length - SERIES_SUFFIX.length; i < end; i++) n = n * 10 + id.charCodeAt(i) - 48
  return n
}

/** The position of `n` in the ascending `numbers`, or -1. */
const search = (numbers: ReadonlyArray<number>, n: number): number => {
  let lo = 0
  let hi = numbers.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const x = numbers[mid]!
    if (x === n) return mid
    if (x < n) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}

interface TradeLog {
  readonly items: Array<Trade>
}

export interface LedgerState {
  readonly initialCash: Money
  readonly cash: Money
  /** Realized P&L of all symbols, commissions included. */
  readonly realizedPnl: Money
  readonly commissions: Money
  /** The number of fills booked. */
  readonly fillCount: number
  /** The number of trades closed. */
  readonly tradeCount: number
  /** Books by slot; `undefined` for a symbol of the universe not traded yet. */
  readonly books: ReadonlyArray<Book | undefined>
  /** Symbol → slot. Shared between states, copied only when a new symbol appears. */
  readonly slots: ReadonlyMap<string, number>
  /** Whether a fill for a symbol outside `slots` is refused (a universe was given). */
  readonly closedUniverse: boolean
  readonly fillLog: FillLog
  readonly tradeLog: TradeLog
}

export interface LedgerOptions {
  readonly cash: Money
  /** The run's symbols. When given, a fill for any other symbol is rejected (`field: "symbol"`). */
  readonly symbols?: ReadonlyArray<Symbol>
}

export const make = (options: LedgerOptions): LedgerState => {
  const slots = new Map<string, number>()
  for (const symbol of options.symbols ?? []) if (!slots.has(symbol)) slots.set(symbol, slots.size)
  return {
    initialCash: M.micros(options.cash),
    cash: M.micros(options.cash),
    realizedPnl: M.zero,
    commissions: M.zero,
    fillCount: 0,
    tradeCount: 0,
    books: new Array<Book | undefined>(slots.size).fill(undefined),
    slots,
    closedUniverse: options.symbols !== undefined,
    fillLog: { index: new Map(), series: new Map(), size: 0 },
    tradeLog: { items: [] }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Whether the fill id was booked in this state. */
export const isApplied = (state: LedgerState, fillId: string): boolean => {
  const sep = seriesAt(fillId)
  return sep < 0 ? appliedIn(state, fillId, undefined, 0) : appliedIn(state, fillId, fillId.slice(0, sep), seriesNumber(fillId, sep))
}

/** `isApplied`, given the id's series prefix and number (`seriesAt`), when it has them. */
const appliedIn = (state: LedgerState, fillId: string, prefix: string | undefined, n: number): boolean => {
  const log = state.fillLog
  if (prefix !== undefined) {
    const series = log.series.get(prefix)
    if (series !== undefined) {
      const numbers = series.numbers
      // Past the series' last: never recorded, in the series or in `index` (see FillLog).
      if (n > numbers[numbers.length - 1]!) return false
      const i = search(numbers, n)
      if (i >= 0) return series.at[i]! < state.fillCount
    }
  }
  const at = log.index.get(fillId)
  return at !== undefined && at < state.fillCount
}

export const book = (state: LedgerState, symbol: string): Book | undefined => {
  const slot = state.slots.get(symbol)
  return slot === undefined ? undefined : state.books[slot]
}

/** The signed position in units (negative when short, 0 when flat or never traded). */
export const quantityOf = (state: LedgerState, symbol: string): number => {
  const b = book(state, symbol)
  return b === undefined ? 0 : b.quantity / M.MICROS_PER_UNIT
}

/** Average entry price of the open quantity; 0 when flat. */
export const averagePriceOf = (state: LedgerState, symbol: string): number => {
  const b = book(state, symbol)
  return b === undefined || b.quantity === 0 ? 0 : averagePrice(b)
}

const averagePrice = (b: Book): number => Math.abs(b.cost / b.quantity)

/** Closed trades, oldest first, from the `from`-th on (0 = all): new ones after a fill are `trades(next, prev.tradeCount)`. */
export const trades = (state: LedgerState, from = 0): ReadonlyArray<Trade> =>
  state.tradeLog.items.slice(Math.max(0, from), state.tradeCount)

/** The number of open (non-flat) positions. */
export const openPositions = (state: LedgerState): number => {
  let n = 0
  for (const b of state.books) if (b !== undefined && b.quantity !== 0) n++
  return n
}

/**
 * Marks, per symbol: a `Map`, or any lookup by symbol (the ledger agent reads its marks by slot). A
 * `Map` rather than a record: `Map.get` on string keys measured about twice as fast here as a
 * property lookup on a dictionary-mode object, and it is what a feed updates in place.
 */
export type Prices = { readonly get: (symbol: string) => number | undefined }

/**
 * cash + Σ notional(quantity, mark), in micros, for the per-bar path: no allocation. A symbol with
 * no price in `prices` is marked at its last fill price. Prices come from decoded bars; a
 * non-finite one is a defect (`MoneyOutOfRange`).
 */
export const equity = (state: LedgerState, prices: Prices): Money => {
  let total = state.cash as number
  const books = state.books
  for (let i = 0; i < books.length; i++) {
    const b = books[i]
    if (b === undefined || b.quantity === 0) continue
    total += M.notionalOfMicroQuantity(b.quantity, prices.get(b.symbol) ?? b.lastPrice)
  }
  if (!Number.isSafeInteger(total)) return M.micros(total) // throws MoneyOutOfRange
  return total as Money
}

/**
 * The slot of `symbol`: its index in the `symbols` given to `make`, then symbols first filled in
 * order of their first fill. A slot never changes, so a driver can keep marks in an array by slot.
 */
export const slotOf = (state: LedgerState, symbol: string): number | undefined => state.slots.get(symbol)

/**
 * `equity` with marks by slot (`marks[slotOf(symbol)]`, e.g. a `Float64Array` in universe order): the
 * fastest per-bar form, an array read instead of a hash lookup per position. A mark that is missing
 * or not above 0 (an unset `Float64Array` cell) falls back to the last fill price.
 */
export const equityFromMarks = (state: LedgerState, marks: ArrayLike<number>): Money => {
  let total = state.cash as number
  const books = state.books
  for (let i = 0; i < books.length; i++) {
    const b = books[i]
    if (b === undefined || b.quantity === 0) continue
    const mark = marks[i]
    total += M.notionalOfMicroQuantity(b.quantity, mark !== undefined && mark > 0 ? mark : b.lastPrice)
  }
  if (!Number.isSafeInteger(total)) return M.micros(total) // throws MoneyOutOfRange
  return total as Money
}

/**
 * The portfolio at marks `prices` (last fill price where missing), every symbol ever traded included
 * — or, with `only`, the totals of the whole book and the positions of those symbols alone.
 */
export const markToMarket = (state: LedgerState, prices: Prices, ts: Timestamp, only?: ReadonlySet<string>): PortfolioSnapshot => {
  const positions: Array<Position> = []
  let gross = 0
  let net = 0
  let unrealized = 0
  for (const b of state.books) {
    if (b === undefined) continue
    const mark = prices.get(b.symbol) ?? b.lastPrice
    const marketValue = b.quantity === 0 ? M.zero : M.notionalOfMicroQuantity(b.quantity, mark)
    const unrealizedPnl = M.sub(marketValue, b.cost)
    gross += Math.abs(marketValue)
    net += marketValue
    unrealized += unrealizedPnl
    if (only !== undefined && !only.has(b.symbol)) continue
    positions.push({
      symbol: b.symbol,
      quantity: b.quantity / M.MICROS_PER_UNIT,
      averagePrice: b.quantity === 0 ? 0 : averagePrice(b),
      realizedPnl: b.realizedPnl,
      markPrice: mark,
      marketValue,
      unrealizedPnl
    })
  }
  return {
    ts,
    cash: state.cash,
    equity: M.add(state.cash, M.micros(net)),
    grossExposure: M.micros(gross),
    netExposure: M.micros(net),
    realizedPnl: state.realizedPnl,
    unrealizedPnl: M.micros(unrealized),
    positions
  }
}

// ---------------------------------------------------------------------------------------------
// Booking a fill

const reject = (fill: Fill, field: string, value: unknown, reason: string) =>
  Either.left(new FillRejected({ fillId: describeId(fill), field, value: describeValue(value), reason }))

const describeId = (fill: Fill): string => (typeof fill?.id === "string" ? fill.id : describeValue(fill?.id))

/** Why a fill is refused when booking it would take an amount past Money's exact range (`leavesMoneyRange`). */
const PAST_RANGE_NOTIONAL = "quantity × price exceeds the exact money range"
const PAST_RANGE_CASH = "cash would leave the exact money range (±2^53−1 micros)"
const PAST_RANGE_BOOK = "the position's cost or P&L would leave the exact money range (±2^53−1 micros)"
const PAST_RANGE: ReadonlySet<string> = new Set([PAST_RANGE_NOTIONAL, PAST_RANGE_CASH, PAST_RANGE_BOOK])

/**
 * Whether `applyFill` refused a well-formed fill only because booking it would take cash, a cost
 * or P&L past Money's exact range — the books' limit, not a malformed fill (agents/Ledger.ts stops
 * the run for it rather than crash).
 */
export const leavesMoneyRange = (rejected: FillRejected): boolean => PAST_RANGE.has(rejected.reason)

/** Larger quantities do not fit the micro-unit grid as safe integers. */
const MAX_QUANTITY = Number.MAX_SAFE_INTEGER / M.MICROS_PER_UNIT

// Trips are built by one constructor with every field listed: an object spread with overrides
// (`{ ...trip, gross }`) measured several times slower on this path.
const makeTrip = (
  entryTs: Timestamp,
  maxQuantity: number,
  entryValue: number,
  entryQuantity: number,
  exitValue: number,
  exitQuantity: number,
  gross: number,
  commission: number
): Trip => ({
  entryTs,
  maxQuantity,
  entryValue,
  entryQuantity,
  exitValue,
  exitQuantity,
  gross: gross as Money,
  commission: commission as Money
})

const openTrip = (ts: Timestamp, quantity: number, price: number, commission: number): Trip =>
  makeTrip(ts, quantity, price * quantity, quantity, 0, 0, 0, commission)

const emptyTrip: Trip = makeTrip(0 as Timestamp, 0, 0, 0, 0, 0, 0, 0)

/** `amount × part ÷ whole`, rounded half to even; exactly `amount` when the part is the whole. */
const share = (amount: Money, part: number, whole: number): Money =>
  part === whole ? amount : (M.roundHalfEven((amount * part) / whole) as Money)

const safe = Number.isSafeInteger

/**
 * Book a fill exactly once. A fill whose id was booked before returns `state` itself. A malformed
 * or hostile fill (empty id, unknown side, quantity 0 / negative / NaN / ±Infinity / finer than
 * 10⁻⁶ / too large, a non-finite or non-positive price, a notional that is not
 * `notional(quantity, price)`, a negative or non-integer commission, a non-integer time, a symbol
 * outside the run's universe, or amounts that would leave the exact range) is a `FillRejected`
 * naming the field, and the state is unchanged.
 */
export const applyFill = (state: LedgerState, fill: Fill): Either.Either<LedgerState, FillRejected> => {
  if (fill === null || typeof fill !== "object") return reject(fill, "fill", fill, "a fill is an object")
  const id = fill.id
  if (typeof id !== "string" || id.length === 0) return reject(fill, "id", id, "a fill id is a non-empty string")
  // The id's series, if it has one (FillLog): looked up once, for the check and the record.
  const sep = seriesAt(id)
  const prefix = sep < 0 ? undefined : id.slice(0, sep)
  const n = sep < 0 ? 0 : seriesNumber(id, sep)
  if (appliedIn(state, id, prefix, n)) return Either.right(state)

  const side = fill.side
  if (side !== "buy" && side !== "sell") return reject(fill, "side", side, "the side is \"buy\" or \"sell\"")
  const symbol = fill.symbol
  if (typeof symbol !== "string" || symbol.length === 0) return reject(fill, "symbol", symbol, "a symbol is a non-empty string")
  const slot = state.slots.get(symbol)
  if (slot === undefined && state.closedUniverse) {
    return reject(fill, "symbol", symbol, "not one of this run's symbols")
  }
  const quantity = fill.quantity
  // `!(x > 0)` also catches NaN and non-numbers
  if (typeof quantity !== "number" || !(quantity > 0)) return reject(fill, "quantity", quantity, "a quantity must be a number greater than 0")
  if (!(quantity <= MAX_QUANTITY)) return reject(fill, "quantity", quantity, `a quantity must be at most ${MAX_QUANTITY}`)
  const exact = quantity * M.MICROS_PER_UNIT
  const qty = Math.round(exact)
  if (qty === 0 || Math.abs(exact - qty) > 1e-9 * qty) {
    return reject(fill, "quantity", quantity, "a quantity is a multiple of 0.000001 units")
  }
  const price = fill.price
  if (typeof price !== "number" || !(price > 0) || price === Infinity) {
    return reject(fill, "price", price, "a price must be a finite number greater than 0")
  }
  const product = qty * price
  if (!(product <= Number.MAX_SAFE_INTEGER)) return reject(fill, "notional", fill.notional, PAST_RANGE_NOTIONAL)
  const notional = M.notionalOfMicroQuantity(qty, price)
  if (fill.notional !== notional) {
    return reject(fill, "notional", fill.notional, `the notional must be quantity × price rounded half to even to the micro: ${notional}`)
  }
  const commission = fill.commission
  if (!safe(commission) || commission < 0) {
    return reject(fill, "commission", commission, "a commission is a non-negative integer number of micros")
  }
  const ts = fill.ts
  if (!safe(ts)) return reject(fill, "ts", ts, "a time is an integer number of milliseconds")

  const cash = side === "buy" ? state.cash - notional - commission : state.cash + notional - commission
  if (!safe(cash)) return reject(fill, "notional", notional, PAST_RANGE_CASH)

  const previous = slot === undefined ? undefined : state.books[slot]
  const held = previous === undefined ? 0 : previous.quantity
  const delta = side === "buy" ? qty : -qty
  const signedNotional = side === "buy" ? notional : -notional
  const realizedBefore = previous === undefined ? 0 : previous.realizedPnl
  const commissionsBefore = previous === undefined ? 0 : previous.commissions

  let quantityAfter: number
  let cost: number
  let trip: Trip
  let gross = 0
  let closed: Trade | undefined

  if (held === 0 || (held > 0) === (delta > 0)) {
    // open, or add on the same side
    quantityAfter = held + delta
    cost = (previous === undefined || held === 0 ? 0 : previous.cost) + signedNotional
    if (held === 0 || previous === undefined) {
      trip = openTrip(ts, qty, price, commission)
    } else {
      const t = previous.trip
      trip = makeTrip(
        t.entryTs,
        Math.max(t.maxQuantity, Math.abs(quantityAfter)),
        t.entryValue + price * qty,
        t.entryQuantity + qty,
        t.exitValue,
        t.exitQuantity,
        t.gross,
        t.commission + commission
      )
    }
  } else {
    // reduce, close, or reverse through zero
    const b = previous!
    const open = Math.abs(held)
    const closing = Math.min(qty, open)
    const released = share(b.cost, closing, open)
    const closingNotional = share(notional as Money, closing, qty)
    const closingCommission = share(commission as Money, closing, qty)
    gross = (held > 0 ? closingNotional : -closingNotional) - released
    quantityAfter = held + delta
    const t = b.trip
    const tripGross = t.gross + gross
    const tripCommission = t.commission + closingCommission
    const exitValue = t.exitValue + price * closing
    const exitQuantity = t.exitQuantity + closing
    if (closing < open) {
      cost = b.cost - released
      trip = makeTrip(t.entryTs, t.maxQuantity, t.entryValue, t.entryQuantity, exitValue, exitQuantity, tripGross, tripCommission)
    } else {
      closed = {
        symbol: b.symbol,
        side: held > 0 ? "long" : "short",
        quantity: t.maxQuantity / M.MICROS_PER_UNIT,
        entryTs: t.entryTs,
        exitTs: ts as Timestamp,
        entryPrice: t.entryValue / t.entryQuantity,
        exitPrice: exitValue / exitQuantity,
        pnl: (tripGross - tripCommission) as Money,
        commission: tripCommission as Money
      }
      const remaining = qty - closing
      if (remaining === 0) {
        cost = 0
        trip = emptyTrip
      } else {
        const openingNotional = notional - closingNotional
        cost = side === "buy" ? openingNotional : -openingNotional
        trip = openTrip(ts, remaining, price, commission - closingCommission)
      }
    }
  }

  const realizedPnl = realizedBefore + gross - commission
  const totalRealized = state.realizedPnl + gross - commission
  if (!safe(cost) || !safe(realizedPnl) || !safe(totalRealized)) {
    return reject(fill, "notional", notional, PAST_RANGE_BOOK)
  }

  const next: Book = {
    symbol: (previous?.symbol ?? symbol) as Symbol,
    quantity: quantityAfter,
    cost: (cost === 0 ? 0 : cost) as Money,
    realizedPnl: realizedPnl as Money,
    commissions: (commissionsBefore + commission) as Money,
    lastPrice: price,
    trip
  }

  let slots = state.slots
  let books: Array<Book | undefined>
  let at = slot
  if (at === undefined) {
    // a symbol seen for the first time: the one case that copies the slot map
    at = slots.size
    const grown = new Map(slots)
    grown.set(symbol, at)
    slots = grown
    books = [...state.books, undefined]
  } else {
    books = state.books.slice()
  }
  books[at] = next

  return Either.right({
    initialCash: state.initialCash,
    cash: cash as Money,
    realizedPnl: totalRealized as Money,
    commissions: (state.commissions + commission) as Money,
    fillCount: state.fillCount + 1,
    tradeCount: closed === undefined ? state.tradeCount : state.tradeCount + 1,
    books,
    slots,
    closedUniverse: state.closedUniverse,
    fillLog: recordFill(state.fillLog, state.fillCount, id, prefix, n),
    tradeLog: closed === undefined ? state.tradeLog : recordTrade(state.tradeLog, state.tradeCount, closed)
  })
}

/** Append in place when `count` is the log's end (the newest state); otherwise copy the prefix first. */
const recordFill = (log: FillLog, count: number, id: string, prefix: string | undefined, n: number): FillLog => {
  const target = log.size === count ? log : prefixOf(log, count)
  target.size++
  if (prefix !== undefined) {
    let series = target.series.get(prefix)
    if (series === undefined) target.series.set(prefix, series = { numbers: [], at: [] })
    const numbers = series.numbers
    if (numbers.length === 0 || n > numbers[numbers.length - 1]!) {
      numbers.push(n)
      series.at.push(count)
      return target
    }
  }
  target.index.set(id, count)
  return target
}

/** The ids recorded before `count`, in a log of their own. */
const prefixOf = (log: FillLog, count: number): FillLog => {
  const index = new Map<string, number>()
  for (const [key, at] of log.index) if (at < count) index.set(key, at)
  const series = new Map<string, Series>()
  for (const [prefix, { at, numbers }] of log.series) {
    let end = at.length
    while (end > 0 && at[end - 1]! >= count) end--
    if (end > 0) series.set(prefix, { numbers: numbers.slice(0, end), at: at.slice(0, end) })
  }
  return { index, series, size: count }
}

const recordTrade = (log: TradeLog, count: number, trade: Trade): TradeLog => {
  const target = log.items.length === count ? log : { items: log.items.slice(0, count) }
  target.items.push(trade)
  return target
}

/** Book fills in order, stopping at the first rejected one. */
export const applyFills = (state: LedgerState, fills: Iterable<Fill>): Either.Either<LedgerState, FillRejected> => {
  let current = state
  for (const fill of fills) {
    const next = applyFill(current, fill)
    if (Either.isLeft(next)) return next
    current = next.right
  }
  return Either.right(current)
}
