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
 * first; a buy that cannot pay one unit is cancelled, saying so.
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
import type { ExecutionConfig } from "../schemas/Execution.js"
import type { Fill, Order } from "../schemas/Order.js"
import { book, DeskProtocol, type LedgerProtocol } from "../schemas/TradingProtocol.js"
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
}

interface Desk {
  /** Unfilled orders, at most one per symbol. */
  readonly pending: Map<string, Order>
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

/** The ids of the orders the desk holds unfilled, for the ledger's books (`Book.open`). */
const openOrders = (desk: Desk): ReadonlyArray<OrderId> => {
  if (desk.pending.size === 0) return noOrders
  const ids: Array<OrderId> = []
  for (const order of desk.pending.values()) ids.push(order.id)
  return ids
}

export const make = (options: DeskOptions) => {
  const { execution, log } = options
  /** Fill a same-close `order` on `bar` now, within the cash at hand. */
  const fillOn = (desk: Desk, order: Order, bar: Bar, fills: Array<Fill>): void => {
    const filled = Either.flatMap(
      Either.mapLeft(FillModel.fill(order, bar, execution), (error) => error.message),
      (fill) => FillModel.withinCash(fill, desk.cash, execution)
    )
    if (Either.isRight(filled)) {
      fills.push(filled.right)
      desk.cash += cashMove(filled.right)
      log.emit("OrderFilled", { fill: filled.right })
    } else {
      log.emit("OrderCancelled", { order: order.id, symbol: order.symbol, reason: filled.left })
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
    const made = due.map((order, i) => FillModel.fill(order, dueBars[i]!, execution))
    let available = desk.cash
    for (const filled of made) {
      if (Either.isRight(filled) && filled.right.side === "sell") available += cashMove(filled.right)
    }
    const fills: Array<Fill> = []
    /** The span the booking goes under when it books an order of a traced round (and this one is not). */
    let bookUnder: Tracer.Span | undefined
    for (let i = 0; i < due.length; i++) {
      const order = due[i]!
      const filled = made[i]!
      const fill: Either.Either<Fill, string> = Either.isLeft(filled)
        ? Either.left(filled.left.message)
        : filled.right.side === "sell"
        ? Either.right(filled.right)
        : FillModel.withinCash(filled.right, available, execution)
      if (Either.isRight(fill)) {
        fills.push(fill.right)
        desk.cash += cashMove(fill.right)
        if (fill.right.side === "buy") available += cashMove(fill.right)
        log.emit("OrderFilled", { fill: fill.right })
      } else {
        log.emit("OrderCancelled", { order: order.id, symbol: order.symbol, reason: fill.left })
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
          desk.traced.delete(order.symbol)
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
    const booking = options.ledger().tell(book({ ts, bars, fills: fills.length === 0 ? noFills : fills, open: openOrders(desk) }))
    return Effect.as(bookUnder === undefined || trace !== undefined ? booking : Effect.withParentSpan(booking, bookUnder), desk)
  }

  return Actor.make({
    protocol: DeskProtocol,
    setup: () =>
      Effect.sync((): Desk => ({
        pending: new Map(),
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
          if (desk.pending.size === 0) return Effect.as(options.ledger().tell(book({ ts, bars, fills: noFills, open: noOrders })), desk)
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
            log.emit("OrderCancelled", { order: order.id, symbol: order.symbol, reason: `the data ended (${when}) before a bar of ${symbol} to fill it at` })
          }
          desk.pending.clear()
          desk.traced.clear()
          return Effect.succeed(desk)
        }
        const trace = context.trace
        const fills: Array<Fill> = []
        for (const order of message.orders) {
          const last = desk.placed.get(order.symbol)
          if (last !== undefined && last.key === order.idempotencyKey) continue
          if (last !== undefined && order.decidedAt <= last.decidedAt) {
            log.emit("OrderCancelled", { order: order.id, symbol: order.symbol, reason: `stale: an order decided at ${last.decidedAt} was placed already` })
            continue
          }
          desk.placed.set(order.symbol, { key: order.idempotencyKey, decidedAt: order.decidedAt })
          const replaced = desk.pending.get(order.symbol)
          if (replaced !== undefined) {
            desk.pending.delete(order.symbol)
            desk.traced.delete(order.symbol)
            log.emit("OrderCancelled", { order: replaced.id, symbol: replaced.symbol, reason: `replaced by order ${order.id}` })
          }
          log.emit("OrderPlaced", { order })
          Metrics.ordersPlaced[order.side].pending++
          trace?.event("order placed", { "order.id": order.id, "swarm.symbol": order.symbol, "order.side": order.side, "order.quantity": order.quantity, "order.fill_timing": order.fillTiming })
          if (order.fillTiming === "same_close") {
            const bar = desk.lastTs === order.decidedAt ? desk.lastBars.find((b) => b.symbol === order.symbol) : undefined
            if (bar === undefined) {
              log.emit("OrderCancelled", { order: order.id, symbol: order.symbol, reason: `no bar of ${order.symbol} at ${order.decidedAt} to fill at its close` })
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
        return Effect.as(options.ledger().tell(book({ ts: message.ts as Timestamp, bars: [], fills, open: openOrders(desk) })), desk)
      })
  })
}
