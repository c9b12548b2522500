/**
 * The execution desk: a paper broker. It takes the orders the risk officer passed — from nobody
 * else: no order reaches it without a verdict — and fills them with the fill model
 * (src/trading/FillModel.ts): at the next bar's open by default, at the deciding bar's close when
 * the strategy says `same_close`. Fills go to the ledger with every timestamp's bars, in one
 * message per timestamp.
 *
 * Idempotent: an order is placed once per idempotency key (a risk officer that restarts and judges
 * the same round again, or a duplicated message, places nothing twice); a key is at most one order
 * and fill ids derive from order ids, so the ledger books each fill once. An order decided before
 * the last one placed for its symbol is stale and is cancelled, not placed. A new order for a symbol
 * with an unfilled one replaces it (`OrderCancelled`): targets, not deltas, are what decisions
 * mean. An order still unfilled when the data ends (decided on its symbol's last bar) is cancelled,
 * saying so, rather than left pending for ever.
 *
 * No fill leaves cash below zero: the risk officer judged a buy at its deciding bar's close, but a
 * next-open buy pays the next open, which may gap past the reserve the gates kept. The desk keeps
 * the cash as its fills leave it (the ledger's, by the same arithmetic: nothing else moves it) and
 * cuts a buy to what the cash pays for (`FillModel.withinCash`), the sales of the same open counted
 * first; a buy that cannot pay one unit is cancelled, saying so. A fractional strategy's buy is cut
 * on micro-units, whatever its quantity (`DeskOptions.fractional`).
 *
 * With a volume limit (`ExecutionConfig.maxVolumePercent`) an order fills at most its share of each
 * bar (`FillModel.fillPart`) and the rest stays pending, worked at the symbol's next opens until it
 * is filled, replaced by a new order, superseded by a decision that orders nothing
 * (`PlaceOrders.superseded`), cut for cash (the rest cancelled: a cut is final), or cancelled when
 * the data ends; each cancellation says how much had filled and how much is cancelled (and, at the
 * end of the data, of an order none of which filled, whether bars of its symbol came that traded
 * too little for a unit of it: `countsThinBars`). The ledger's
 * books learn what is left of each open order (`Book.left`), for the risk officer. Without the
 * limit every path is as it was, message for message and event for event.
 *
 * Orders placed are counted by side (`swarm.orders`). An order placed in a traced round keeps its
 * round's trace to its fill: filled at a later open, the fill is an `ExecutionDesk.fill` span of
 * that round's trace (ending after the round's spans: it happens later). The ledger books the fills
 * of an open with its bars, in one message: when the open's own round is traced (every round of a
 * paper run), the booking is in that round's trace, where the desk's span records each fill as an
 * event naming the round that placed the order, and the fill span links to it; otherwise the
 * booking goes under the fill span.
 */
import { Effect, Either, type Tracer } from "effect"
import type { OrderId, Timestamp } from "../schemas/Ids.js"
import type { Bar } from "../schemas/Market.js"
import type { ExecutionConfig, OrderNotFillable } from "../schemas/Execution.js"
import type { Fill, Order } from "../schemas/Order.js"
import { book, DeskProtocol, type LedgerProtocol, type OpenOrder } from "../schemas/TradingProtocol.js"
import * as Actor from "../src/actor/Actor.js"
import type { ActorRef } from "../src/actor/ActorRef.js"
import type { RunLog } from "../src/swarm/RunLog.js"
import * as Metrics from "../src/telemetry/Metrics.js"
import type { Trace } from "../src/telemetry/Trace.js"
import * as FillModel from "../src/trading/FillModel.js"

export interface DeskOptions {
  readonly log: RunLog
  readonly execution: ExecutionConfig
  readonly ledger: () => ActorRef<LedgerProtocol, "backpressure">
  /**
   * The run's initial cash (micros). The ledger's cash moves only by this desk's fills, so the desk
   * keeps the same account — the same arithmetic, exactly — to fill no buy past it.
   */
  readonly initialCash: number
  /**
   * With a volume limit, an order the end of the data cancels before any of it filled says how many
   * bars of its symbol came and traded too little for a unit of it, rather than that no bar came
   * (`RunStarted.workingOrders`: new runs). Off — runs recorded before it — it says no bar came, as they recorded.
   */
  readonly countsThinBars?: boolean
  /**
   * The strategy trades fractional units: a buy cut for cash, and a part under a volume limit, are on
   * micro-units whatever the order's quantity (`FillModel.wholeUnits`; `RunStarted.fractionalCuts`:
   * new runs of such strategies). Off — whole units, or a run recorded before it — the grid is told
   * from the quantity: an order of a whole number of units is cut in whole units, as those runs recorded.
   */
  readonly fractional?: boolean
}

interface Desk {
  /**
   * Unfilled orders, at most one per symbol. With a volume limit, an order partly filled stays here
   * for what is left (a `same_close` one as `next_open`: its remainder fills at later opens).
   */
  readonly pending: Map<string, Order>
  /** With a volume limit: what each pending order has filled so far, by symbol (absent: nothing). */
  readonly progress: Map<string, FillModel.Progress>
  /**
   * With a volume limit (`DeskOptions.countsThinBars`): by symbol, how many of its bars traded too
   * little for a unit of the order named, which has filled none of it yet — a newer order starts again.
   */
  readonly thin: Map<string, { readonly order: OrderId; readonly bars: number }>
  /**
   * Per symbol, the last order placed: its key and decision time. Rounds of a symbol come in time
   * order, so this is the whole idempotency record — bounded by the symbols, not the orders.
   */
  readonly placed: Map<string, { readonly key: string; readonly decidedAt: number }>
  /** The latest timestamp's bars, for same-close fills. */
  lastTs: number
  lastBars: ReadonlyArray<Bar>
  /** Of the unfilled orders, those placed in a traced round: their round's span, by symbol. */
  readonly traced: Map<string, Trace>
  /** The cash as the fills so far leave it (micros): the ledger's, kept alongside (`DeskOptions.initialCash`). */
  cash: number
}

/** What `fill` does to cash (micros): a buy pays its notional, a sale receives it; both pay the commission. */
const cashMove = (fill: Fill): number => (fill.side === "buy" ? -fill.notional : fill.notional) - fill.commission

const fillAttributes = (fill: Fill) => ({
  "order.id": fill.orderId,
  "swarm.symbol": fill.symbol,
  "order.side": fill.side,
  "fill.quantity": fill.quantity,
  "fill.price": fill.price,
  "fill.market_price": fill.marketPrice,
  "fill.notional": fill.notional / 1_000_000, // dollars, as fill.price (the fill holds micros)
  "fill.commission": fill.commission / 1_000_000
})

const noFills: ReadonlyArray<Fill> = []
const noOrders: ReadonlyArray<OrderId> = []

/** With a volume limit: what is left of each order the desk holds, for the ledger's books (`Book.left`). */
const leftOrders = (desk: Desk): ReadonlyArray<OpenOrder> => {
  const left: Array<OpenOrder> = []
  for (const [symbol, order] of desk.pending) {
    left.push({ order: order.id, left: FillModel.leftOf(order, desk.progress.get(symbol) ?? FillModel.notStarted) })
  }
  return left
}

/** The ids of the orders the desk holds unfilled, for the ledger's books (`Book.open`). */
const openOrders = (desk: Desk): ReadonlyArray<OrderId> => {
  if (desk.pending.size === 0) return noOrders
  const ids: Array<OrderId> = []
  for (const order of desk.pending.values()) ids.push(order.id)
  return ids
}

export const make = (options: DeskOptions) => {
  const { execution, log } = options
  const fractional = options.fractional === true
  /** The volume limit (percent of a bar's volume an order may fill on it), or undefined: fills are whole, as ever. */
  const limit = execution.maxVolumePercent
  /** What a `Book` says of the open orders besides their ids: what is left of each, with a volume limit. */
  const withLeft = (desk: Desk) => (limit === undefined ? {} : { left: leftOrders(desk) })
  /** A bar of `order`'s symbol came and traded too little for a unit of it (`DeskOptions.countsThinBars`). */
  const tooThin = (desk: Desk, order: Order): void => {
    if (options.countsThinBars !== true) return
    const before = desk.thin.get(order.symbol)
    desk.thin.set(order.symbol, { order: order.id, bars: before?.order === order.id ? before.bars + 1 : 1 })
  }
  /** Why the end of the data (`when`) cancels `order`, of `symbol`, before any of it filled. */
  const unfilledAtEnd = (desk: Desk, order: Order, symbol: string, when: string): string => {
    const thin = desk.thin.get(symbol)
    if (thin === undefined || thin.order !== order.id) return `the data ended (${when}) before a bar of ${symbol} to fill it at`
    const bars = thin.bars === 1 ? `the one bar of ${symbol} that came` : `the ${thin.bars} bars of ${symbol} that came`
    return `the data ended (${when}) before any of it filled: ${bars} traded too little for a unit of it (volume limit)`
  }
  /**
   * Cancel `order` (no longer pending), saying why — and, with a volume limit, how much of it had
   * filled and how much is cancelled.
   */
  const cancel = (desk: Desk, order: Order, reason: string, pending = true): void => {
    if (limit === undefined) {
      log.emit("OrderCancelled", { order: order.id, symbol: order.symbol, reason })
      return
    }
    // A pending order's progress is its symbol's; an order never held (stale, no bar) has none.
    const progress = (pending ? desk.progress.get(order.symbol) : undefined) ?? FillModel.notStarted
    if (pending) desk.progress.delete(order.symbol)
    log.emit("OrderCancelled", {
      order: order.id,
      symbol: order.symbol,
      reason,
      filled: progress.filled,
      unfilled: FillModel.leftOf(order, progress)
    })
  }
  /**
   * With a volume limit, after `fill` of `order` (taken off `pending`): keep what is left working on
   * the symbol's next bars — as a next-open order, whatever its timing — or, when a cash cut
   * (`reduced`) ended it early, cancel the rest; forget its progress once it is done.
   */
  const worked = (desk: Desk, order: Order, fill: Fill, reason: string | undefined): boolean => {
    const progress = FillModel.advance(desk.progress.get(order.symbol) ?? FillModel.notStarted, fill, execution.commission)
    desk.progress.set(order.symbol, progress)
    if (FillModel.leftOf(order, progress) > 0) {
      if (reason !== undefined) {
        cancel(desk, order, reason)
        return false
      }
      desk.pending.set(order.symbol, order.fillTiming === "same_close" ? { ...order, fillTiming: "next_open" } : order)
      return true
    }
    desk.progress.delete(order.symbol)
    return false
  }
  /** Fill a same-close `order` on `bar` now, within the cash at hand. */
  const fillOn = (desk: Desk, order: Order, bar: Bar, fills: Array<Fill>): void => {
    if (limit !== undefined) {
      const part = FillModel.fillPart(order, bar, execution, FillModel.notStarted, fractional)
      if (Either.isRight(part) && part.right === undefined) {
        // The deciding bar traded too little for a unit: all of it works on the next bars.
        desk.pending.set(order.symbol, { ...order, fillTiming: "next_open" })
        tooThin(desk, order)
        return
      }
    }
    const filled = Either.flatMap(
      Either.mapLeft(
        limit === undefined ? FillModel.fill(order, bar, execution) : FillModel.fillPart(order, bar, execution, FillModel.notStarted, fractional),
        (error) => error.message
      ),
      (fill) => FillModel.withinCash(fill!, desk.cash, execution, limit === undefined ? undefined : FillModel.notStarted, fractional)
    )
    if (Either.isRight(filled)) {
      fills.push(filled.right)
      desk.cash += cashMove(filled.right)
      log.emit("OrderFilled", { fill: filled.right })
      if (limit !== undefined) worked(desk, order, filled.right, filled.right.reduced)
    } else {
      cancel(desk, order, filled.left, false)
    }
  }
  /**
   * Fill the orders due at `ts` (each with its bar), in bar order, then book them with the bars:
   * buys within the cash at hand, this open's sales' proceeds added first (the fills of one open
   * are simultaneous).
   */
  const fillAt = (
    desk: Desk,
    ts: Timestamp,
    bars: ReadonlyArray<Bar>,
    due: ReadonlyArray<Order>,
    dueBars: ReadonlyArray<Bar>,
    trace: Trace | undefined
  ) => {
    const made: ReadonlyArray<Either.Either<Fill | undefined, OrderNotFillable>> = limit === undefined
      ? due.map((order, i) => FillModel.fill(order, dueBars[i]!, execution))
      : due.map((order, i) => FillModel.fillPart(order, dueBars[i]!, execution, desk.progress.get(order.symbol) ?? FillModel.notStarted, fractional))
    let available = desk.cash
    for (const filled of made) {
      if (Either.isRight(filled) && filled.right !== undefined && filled.right.side === "sell") available += cashMove(filled.right)
    }
    const fills: Array<Fill> = []
    /** The span the booking goes under when it books an order of a traced round (and this one is not). */
    let bookUnder: Tracer.Span | undefined
    for (let i = 0; i < due.length; i++) {
      const order = due[i]!
      const filled = made[i]!
      if (Either.isRight(filled) && filled.right === undefined) {
        // The bar traded too little for a unit of it (volume limit): it works on, untouched.
        desk.pending.set(order.symbol, order)
        if (!desk.progress.has(order.symbol)) tooThin(desk, order)
        continue
      }
      const fill: Either.Either<Fill, string> = Either.isLeft(filled)
        ? Either.left(filled.left.message)
        : filled.right!.side === "sell"
        ? Either.right(filled.right!)
        : FillModel.withinCash(
          filled.right!,
          available,
          execution,
          limit === undefined ? undefined : desk.progress.get(order.symbol) ?? FillModel.notStarted,
          fractional
        )
      /** Whether some of the order is left working (volume limit). */
      let working = false
      if (Either.isRight(fill)) {
        fills.push(fill.right)
        desk.cash += cashMove(fill.right)
        if (fill.right.side === "buy") available += cashMove(fill.right)
        log.emit("OrderFilled", { fill: fill.right })
        if (limit !== undefined) working = worked(desk, order, fill.right, fill.right.reduced)
      } else {
        cancel(desk, order, fill.left)
      }
      if (trace !== undefined) {
        trace.event(Either.isLeft(fill) ? "order cancelled" : "order filled", {
          "swarm.round": order.round,
          ...(Either.isLeft(fill) ? { "order.id": order.id, "fill.reason": fill.left } : fillAttributes(fill.right))
        })
      }
      if (desk.traced.size > 0) {
        const round = desk.traced.get(order.symbol)
        if (round !== undefined) {
          // A part of an order still working keeps its round's trace for the parts to come.
          if (!working) desk.traced.delete(order.symbol)
          const span = round.child(
            "ExecutionDesk.fill",
            {
              "swarm.round": order.round,
              "swarm.ts": ts,
              ...(Either.isLeft(fill) ? { "fill.cancelled": true } : fillAttributes(fill.right))
            },
            "internal",
            trace === undefined ? [] : [{ _tag: "SpanLink", span: trace.span, attributes: { "swarm.link": "booked in the round of the open" } }]
          )
          span.end()
          bookUnder ??= span.span
        }
      }
    }
    const booking = options.ledger().tell(book({ ts, bars, fills: fills.length === 0 ? noFills : fills, open: openOrders(desk), ...withLeft(desk) }))
    return Effect.as(bookUnder === undefined || trace !== undefined ? booking : Effect.withParentSpan(booking, bookUnder), desk)
  }

  return Actor.make({
    protocol: DeskProtocol,
    // A message on every bar of a run (src/actor/Behavior.ts).
    busy: true,
    setup: () =>
      Effect.sync((): Desk => ({
        pending: new Map(),
        progress: new Map(),
        thin: new Map(),
        placed: new Map(),
        lastTs: Number.NEGATIVE_INFINITY,
        lastBars: [],
        traced: new Map(),
        cash: options.initialCash
      })),
    onRestart: (desk) => Effect.succeed(desk),
    behavior: (desk, message, context) =>
      Effect.suspend(() => {
        if (message._tag === "MarketOpen") {
          const { bars, ts } = message
          desk.lastTs = ts
          desk.lastBars = bars
          if (desk.pending.size === 0) {
            return Effect.as(options.ledger().tell(book({ ts, bars, fills: noFills, open: noOrders, ...(limit === undefined ? {} : { left: [] }) })), desk)
          }
          const due: Array<Order> = []
          const dueBars: Array<Bar> = []
          for (const bar of bars) {
            const order = desk.pending.get(bar.symbol)
            if (order === undefined || !FillModel.isDue(order, bar)) continue
            desk.pending.delete(bar.symbol)
            due.push(order)
            dueBars.push(bar)
          }
          return fillAt(desk, ts, bars, due, dueBars, context.trace)
        }
        if (message._tag === "DataEnded") {
          const when = new Date(message.ts).toISOString()
          for (const symbol of [...desk.pending.keys()].sort()) {
            const order = desk.pending.get(symbol)!
            const started = desk.progress.has(symbol)
            cancel(desk, order, started
              ? `the data ended (${when}) before the rest of it filled (volume limit)`
              : unfilledAtEnd(desk, order, symbol, when))
          }
          desk.pending.clear()
          desk.progress.clear()
          desk.thin.clear()
          desk.traced.clear()
          return Effect.succeed(desk)
        }
        const trace = context.trace
        const fills: Array<Fill> = []
        // A newer decision with no order of its own ends what its symbol's older one left working.
        for (const { round, symbol } of message.superseded ?? []) {
          const working = desk.pending.get(symbol)
          if (working === undefined) continue
          desk.pending.delete(symbol)
          desk.traced.delete(symbol)
          cancel(desk, working, `superseded by the decision of round ${round}, which orders nothing to replace it`)
        }
        for (const order of message.orders) {
          const last = desk.placed.get(order.symbol)
          if (last !== undefined && last.key === order.idempotencyKey) continue
          if (last !== undefined && order.decidedAt <= last.decidedAt) {
            cancel(desk, order, `stale: an order decided at ${last.decidedAt} was placed already`, false)
            continue
          }
          desk.placed.set(order.symbol, { key: order.idempotencyKey, decidedAt: order.decidedAt })
          const replaced = desk.pending.get(order.symbol)
          if (replaced !== undefined) {
            desk.pending.delete(order.symbol)
            desk.traced.delete(order.symbol)
            cancel(desk, replaced, `replaced by order ${order.id}`)
          }
          log.emit("OrderPlaced", { order })
          Metrics.ordersPlaced[order.side].pending++
          trace?.event("order placed", { "order.id": order.id, "swarm.symbol": order.symbol, "order.side": order.side, "order.quantity": order.quantity, "order.fill_timing": order.fillTiming })
          if (order.fillTiming === "same_close") {
            const bar = desk.lastTs === order.decidedAt ? desk.lastBars.find((b) => b.symbol === order.symbol) : undefined
            if (bar === undefined) {
              cancel(desk, order, `no bar of ${order.symbol} at ${order.decidedAt} to fill at its close`, false)
            } else {
              fillOn(desk, order, bar, fills)
              const fill = fills[fills.length - 1]
              if (trace !== undefined && fill !== undefined && fill.orderId === order.id) trace.event("order filled", fillAttributes(fill))
            }
          } else {
            desk.pending.set(order.symbol, order)
            if (trace !== undefined) desk.traced.set(order.symbol, trace)
          }
        }
        if (fills.length === 0) return Effect.succeed(desk)
        return Effect.as(options.ledger().tell(book({ ts: message.ts as Timestamp, bars: [], fills, open: openOrders(desk), ...withLeft(desk) })), desk)
      })
  })
}
