/**
 * The risk officer: nothing trades without its verdict. For the decisions that change a symbol's
 * target it sizes the order (src/trading/Sizing.ts) against the ledger's books as of that bar,
 * judges it — trading state and breakers, user rules, hard gates, approval thresholds
 * (src/trading/RiskCheck.ts) — and passes what survives to the execution desk in one message.
 * Each intent of a batch is judged against the books as the earlier ones of the batch will leave
 * them (src/trading/Projection.ts), and as the orders it placed before and the desk still holds
 * will (`BooksView.open`: a symbol with no bar since has nothing to fill its order at yet; judged
 * without it, the next intents spent the same cash and took the same position slots again).
 *
 * Approval: an intent above the strategy's thresholds needs a human. With no human (a backtest)
 * the strategy's policy decides: `approve` and `reject` are applied at once (and recorded as
 * such), `pause` holds the intent until `ResolveApproval` arrives — the backtest driver stops
 * feeding bars until then.
 *
 * Operators move the trading state with `SetTradingState` (halt, reduce only, resume): a halt is
 * lifted only that way, and lifting one rebases the ledger's risk marks (peak, day start) so the
 * breaker does not trip again on the loss that was acknowledged.
 *
 * Its state — the trading state above all — survives a crash: a restarted risk officer that forgot
 * a halt would be a risk officer that lifts halts. While it is down nothing executes: the
 * coordinator's request fails and the run records `ExecutionBlocked` (fail closed).
 *
 * In a traced round each verdict is a `Risk.verdict` span — its outcome, quantity and reasons as
 * attributes, every rule and gate it evaluated as an event — and an intent held for an operator an
 * `Approval.wait` span, from the verdict to the answer. Rejections are counted by the check that
 * made them (`swarm.risk.rejections`), waiting intents by `swarm.approvals.waiting`.
 */
import { Clock, Effect, Either, Option } from "effect"
import type { Decision } from "../schemas/Decision.js"
import type { ExecutionConfig, SizingConfig } from "../schemas/Execution.js"
import type { OrderId, RoundId, RunId, Timestamp } from "../schemas/Ids.js"
import type { Order, OrderIntent } from "../schemas/Order.js"
import type { ApprovalConfig, RiskLimits, StateTransition, TradingStatus } from "../schemas/Risk.js"
import {
  type BooksView,
  type DeskProtocol,
  type Judge,
  type LedgerProtocol,
  placeOrders,
  RebaseRiskMarks,
  RiskProtocol,
  viewBooks
} from "../schemas/TradingProtocol.js"
import type { Verdict } from "../schemas/Verdict.js"
import * as Actor from "../src/actor/Actor.js"
import type { ActorRef } from "../src/actor/ActorRef.js"
import type { AskError } from "../schemas/ActorError.js"
import type { RunLog } from "../src/swarm/RunLog.js"
import * as Metrics from "../src/telemetry/Metrics.js"
import type { Trace } from "../src/telemetry/Trace.js"
import { Projection } from "../src/trading/Projection.js"
import * as RiskCheck from "../src/trading/RiskCheck.js"
import type * as Rules from "../src/trading/Rules.js"
import * as Sizing from "../src/trading/Sizing.js"
import * as TradingState from "../src/trading/TradingState.js"

const DAY_MS = 86_400_000

export interface RiskOptions {
  readonly log: RunLog
  readonly run: RunId
  readonly rules: Rules.RuleBook
  readonly limits: RiskLimits
  readonly approval: ApprovalConfig
  /** With `allowShort` already the strategy's. */
  readonly sizing: SizingConfig
  readonly allowShort: boolean
  readonly execution: ExecutionConfig
  /** How long an approval may wait before it is rejected (paper runs; recorded in the request). */
  readonly approvalTimeoutMillis: number
  /** How long to wait for the ledger's books. */
  readonly viewTimeoutMillis: number
  readonly ledger: () => ActorRef<LedgerProtocol, "backpressure">
  readonly desk: () => ActorRef<DeskProtocol, "backpressure">
}

/** An order placed and not known filled: what the books will look like once it is (`Officer.placed`). */
interface Placed {
  readonly id: OrderId
  readonly symbol: OrderIntent["symbol"]
  readonly side: OrderIntent["side"]
  readonly quantity: number
  /** Its intent's reference price: its symbol's last close, which no bar has moved since while it waits. */
  readonly price: number
  /** When it was placed: the books of a later timestamp say whether the desk still holds it. */
  readonly at: number
}

interface Held {
  readonly intent: OrderIntent
  readonly quantity: number
  /** In a traced round, the wait for the operator, ended with the answer. */
  readonly wait: Trace | undefined
}

/** A verdict in a traced round: a span, with every rule and gate it evaluated as an event. */
const traceVerdict = (trace: Trace, verdict: Verdict): Trace => {
  const span = trace.child("Risk.verdict", {
    "swarm.round": verdict.intent.round,
    "swarm.symbol": verdict.intent.symbol,
    "risk.outcome": verdict.outcome,
    "risk.side": verdict.intent.side,
    "risk.quantity.asked": verdict.intent.quantity,
    "risk.quantity": verdict.quantity,
    "risk.reference_price": verdict.intent.referencePrice,
    "risk.state": verdict.state,
    "risk.reasons": [...verdict.reasons],
    "risk.rules": verdict.rules.length,
    "risk.gates": verdict.gates.length,
    ...(verdict.transition === null ? {} : { "risk.transition": `${verdict.transition.from} -> ${verdict.transition.to}` }),
    ...(verdict.outcome === "needs_approval" ? { "risk.approval.policy": verdict.policy } : {})
  })
  const measured = (o: Verdict["gates"][number] | Verdict["rules"][number]) => ({
    result: o.result,
    ...("reason" in o ? { reason: o.reason, "quantity.before": o.quantityBefore, "quantity.after": o.quantityAfter } : {}),
    ...(o.limit === null ? {} : { limit: o.limit }),
    ...(o.actual === null ? {} : { actual: o.actual }),
    ...(o.unit === null ? {} : { unit: o.unit })
  })
  for (const rule of verdict.rules) {
    span.event(`rule ${rule.name}`, { rule: rule.rule, kind: rule.kind, category: rule.category, ...measured(rule) })
  }
  for (const gate of verdict.gates) span.event(`gate ${gate.gate}`, { gate: gate.gate, ...measured(gate) })
  return span
}

/** What rejected an intent, counted by check: the rules and gates that said reject, else the trading state. */
const countRejection = (verdict: Verdict): void => {
  let counted = false
  for (const rule of verdict.rules) {
    if (rule.result === "reject") {
      Metrics.rejected("rule", rule.name)
      counted = true
    }
  }
  for (const gate of verdict.gates) {
    if (gate.result === "reject") {
      Metrics.rejected("gate", gate.gate)
      counted = true
    }
  }
  if (!counted) Metrics.rejected("state", verdict.state)
}

class Officer {
  status: TradingStatus
  /** UTC day of `ordersToday`. */
  day = Number.NEGATIVE_INFINITY
  ordersToday = 0
  /** `ordersToday` by symbol (RiskContext.ordersTodayBySymbol). */
  ordersBySymbol: Record<string, number> = {}

  /** Count an order placed today. */
  counted(symbol: string): void {
    this.ordersToday++
    this.ordersBySymbol[symbol] = (this.ordersBySymbol[symbol] ?? 0) + 1
  }
  /** Intents waiting for a human under the `pause` policy, by round. */
  readonly held = new Map<RoundId, Held>()
  /** The next-open orders placed, by symbol (the desk holds at most one a symbol), until the books show them gone. */
  readonly placed = new Map<string, Placed>()

  /** Remember an order placed (it replaces its symbol's earlier one at the desk). */
  place(order: Order, price: number, at: number): void {
    if (order.fillTiming !== "next_open") return
    this.placed.set(order.symbol, { id: order.id, symbol: order.symbol, side: order.side, quantity: order.quantity, price, at })
  }

  /**
   * The orders the desk still holds as `books` stand, forgetting the others: placed before the
   * books' timestamp and not among their open orders, an order was filled (or cancelled) since.
   */
  waiting(books: BooksView): ReadonlyMap<string, Placed> {
    if (this.placed.size === 0) return this.placed
    const asOf = books.snapshot.ts
    for (const [symbol, placed] of this.placed) {
      if (placed.at < asOf && !books.open.includes(placed.id)) this.placed.delete(symbol)
    }
    return this.placed
  }

  constructor(at: Timestamp) {
    this.status = TradingState.initial(at)
  }
}

export const make = (options: RiskOptions) => {
  const { log } = options

  const order = (intent: OrderIntent, quantity: number): Order => ({
    id: `${intent.round}` as OrderId,
    idempotencyKey: `${options.run}/${intent.round}`,
    round: intent.round,
    symbol: intent.symbol,
    side: intent.side,
    quantity,
    type: "market",
    decidedAt: intent.ts,
    fillTiming: options.execution.fillTiming
  })

  const move = (officer: Officer, transition: StateTransition): void => {
    const moved = TradingState.apply(officer.status, transition)
    if (Either.isRight(moved)) {
      officer.status = moved.right.status
      log.emit("TradingStateChanged", { transition: moved.right.transition })
    }
  }

  const newDay = (officer: Officer, now: number): void => {
    const day = Math.floor(now / DAY_MS)
    if (day === officer.day) return
    officer.day = day
    officer.ordersToday = 0
    officer.ordersBySymbol = {}
    const started = TradingState.startTradingDay(officer.status, now as Timestamp)
    if (started.transition !== null) {
      officer.status = started.status
      log.emit("TradingStateChanged", { transition: started.transition })
    }
  }

  /** Judge one batch; returns the orders to place and the tallies. */
  const judge = (
    officer: Officer,
    request: Judge,
    books: BooksView,
    now: number,
    trace: Trace | undefined
  ) => {
    const orders: Array<Order> = []
    const blocked: Array<RoundId> = []
    const refused: Array<RoundId> = []
    const reasons: Array<string> = []
    let rejected = 0
    const projected = new Projection(books.snapshot)
    const waiting = officer.waiting(books)
    for (const placed of waiting.values()) projected.apply(placed.symbol, placed.side, placed.quantity, placed.price)
    for (let i = 0; i < request.decisions.length; i++) {
      const decision: Decision = request.decisions[i]!
      if (decision.action === "hold") continue
      // An order of this symbol still waiting is replaced by the next one: sized and judged without it.
      // (A symbol decided on has a bar, at whose open it filled: this is for safety, not the rule.)
      const earlier = waiting.get(decision.symbol)
      if (earlier !== undefined) projected.apply(earlier.symbol, earlier.side === "buy" ? "sell" : "buy", earlier.quantity, earlier.price)
      const quantity = judgeOne(officer, decision, request.closes[i]!, books, projected, now, trace, orders, blocked, refused, reasons)
      if (quantity < 0) rejected++
      else if (quantity === 0 && earlier !== undefined) projected.apply(earlier.symbol, earlier.side, earlier.quantity, earlier.price)
    }
    if (blocked.length > 0) log.emit("ExecutionBlocked", { ts: request.ts, rounds: blocked, reason: reasons.join("; ") })
    return { orders, rejected, blocked, refused }
  }

  /**
   * Size and judge one decision against the projected books: the quantity ordered (the order
   * pushed, the books projected, the order remembered), 0 for none, -1 for a rejection.
   */
  const judgeOne = (
    officer: Officer,
    decision: Decision,
    price: number,
    books: BooksView,
    projected: Projection,
    now: number,
    trace: Trace | undefined,
    orders: Array<Order>,
    blocked: Array<RoundId>,
    refused: Array<RoundId>,
    reasons: Array<string>
  ): number => {
    if (decision.action === "hold") return 0
    const held = projected.quantityOf(decision.symbol)
    const snapshot = projected.books()
    const sized = Sizing.intentFor({
      round: decision.round,
      symbol: decision.symbol,
      ts: decision.ts,
      direction: decision.action,
      currentQuantity: held,
      equity: snapshot.equity,
      referencePrice: price
    }, options.sizing)
    if (Either.isLeft(sized)) {
      blocked.push(decision.round)
      reasons.push(`${decision.round}: ${sized.left.message}`)
      trace?.event("sizing failed", { "swarm.round": decision.round, reason: sized.left.message })
      return 0
    }
    if (Option.isNone(sized.right)) return 0
    const intent = sized.right.value
    const verdict: Verdict = RiskCheck.check(intent, {
      portfolio: snapshot,
      dayStartEquity: books.dayStartEquity as never,
      peakEquity: books.peakEquity as never,
      ordersToday: officer.ordersToday,
      ordersTodayBySymbol: officer.ordersBySymbol,
      now: now as Timestamp,
      allowShort: options.allowShort,
      allowFractional: options.sizing.fractional
    }, options.rules, options.limits, officer.status.state, options.approval)
    if (verdict.transition !== null) move(officer, verdict.transition)
    log.emit("VerdictGiven", { verdict })
    const span = trace === undefined ? undefined : traceVerdict(trace, verdict)
    let quantity = 0
    let refusedIt = false
    switch (verdict.outcome) {
      case "approved":
      case "reduced":
        quantity = verdict.quantity
        break
      case "rejected":
        refusedIt = true
        refused.push(intent.round)
        countRejection(verdict)
        break
      case "needs_approval": {
        log.emit("ApprovalRequested", {
          round: intent.round,
          intent,
          quantity: verdict.quantity,
          reasons: verdict.reasons,
          expiresAt: (now + options.approvalTimeoutMillis) as Timestamp
        })
        if (verdict.policy === "pause") {
          const wait = span?.child("Approval.wait", { "swarm.round": intent.round, "risk.quantity": verdict.quantity })
          officer.held.set(intent.round, { intent, quantity: verdict.quantity, wait })
          Metrics.approvalWaiting(1)
        } else {
          const approved = verdict.policy === "approve"
          log.emit("ApprovalResolved", {
            round: intent.round,
            outcome: approved ? "approved" : "rejected",
            by: `policy:${verdict.policy}`,
            reason: `no operator in a backtest: the strategy's approval policy is ${verdict.policy}`
          })
          span?.event("approval resolved", { outcome: approved ? "approved" : "rejected", by: `policy:${verdict.policy}` })
          if (approved) quantity = verdict.quantity
          else {
            refusedIt = true
            Metrics.rejected("approval", `policy:${verdict.policy}`)
          }
        }
      }
    }
    span?.end()
    if (quantity > 0) {
      const placed = order(intent, quantity)
      orders.push(placed)
      officer.counted(placed.symbol)
      officer.place(placed, intent.referencePrice, decision.ts)
      projected.apply(intent.symbol, intent.side, quantity, intent.referencePrice)
    }
    return refusedIt ? -1 : quantity
  }

  return Actor.make({
    protocol: RiskProtocol,
    setup: () => Effect.map(Clock.currentTimeMillis, (now) => new Officer(now as Timestamp)),
    // The trading state outlives a crash (see the module comment).
    onRestart: (officer) => Effect.succeed(officer),
    behavior: (officer, message, context) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        switch (message._tag) {
          case "Judge": {
            newDay(officer, now)
            const books = yield* options.ledger().ask(viewBooks({ asOf: message.ts }), { timeout: options.viewTimeoutMillis }).pipe(
              Effect.either
            )
            if (Either.isLeft(books)) {
              const rounds = message.decisions.map((d) => d.round)
              log.emit("ExecutionBlocked", { ts: message.ts, rounds, reason: unseenBooks(books.left, message.ts) })
              yield* context.reply(message, { placed: 0, rejected: 0, pending: officer.held.size, blocked: rounds, refused: [] })
              return officer
            }
            const { blocked, orders, refused, rejected } = judge(officer, message, books.right, now, context.trace)
            if (orders.length > 0) yield* options.desk().tell(placeOrders({ ts: message.ts, orders }))
            yield* context.reply(message, { placed: orders.length, rejected, pending: officer.held.size, blocked, refused })
            return officer
          }
          case "ResolveApproval": {
            const held = officer.held.get(message.round)
            if (held === undefined) return officer
            officer.held.delete(message.round)
            Metrics.approvalWaiting(-1)
            const outcome = message.approved ? "approved" : message.expired ? "expired" : "rejected"
            log.emit("ApprovalResolved", { round: message.round, outcome, by: message.by, reason: message.reason })
            if (!message.approved) Metrics.rejected("approval", outcome)
            if (held.wait !== undefined) {
              held.wait.attribute("approval.outcome", outcome)
              held.wait.attribute("approval.by", message.by)
              held.wait.end()
            }
            if (message.approved) {
              const approved = order(held.intent, held.quantity)
              officer.counted(approved.symbol)
              officer.place(approved, held.intent.referencePrice, now)
              const place = options.desk().tell(placeOrders({ ts: now as Timestamp, orders: [approved] }))
              // Its execution belongs to the traced round that asked for it.
              yield* (held.wait === undefined ? place : Effect.withParentSpan(place, held.wait.span))
            }
            return officer
          }
          case "GetTradingStatus":
            yield* context.reply(message, officer.status)
            return officer
          case "SetTradingState": {
            const moved = TradingState.transition(officer.status, {
              to: message.to,
              cause: "operator",
              at: now as Timestamp,
              reason: message.reason,
              actor: message.actor
            })
            if (Either.isLeft(moved)) {
              yield* context.fail(message, moved.left)
              return officer
            }
            const lifted = moved.right.transition.from !== "active" && moved.right.transition.to !== "halted"
            officer.status = moved.right.status
            log.emit("TradingStateChanged", { transition: moved.right.transition })
            // A lifted breaker starts from the equity it was lifted at (see RebaseRiskMarks).
            if (lifted) yield* options.ledger().tell(new RebaseRiskMarks({}, true))
            yield* context.reply(message, officer.status)
            return officer
          }
        }
      })
  })
}

/**
 * Why the books were not seen, for `ExecutionBlocked`. The ledger shows the books of a bar once
 * the execution desk has marked it: a ledger that does not answer in time most often waits for a
 * desk that is down. (An ask error's `message` field is the message's tag, not a sentence.)
 */
export const unseenBooks = (error: AskError, ts: number): string => {
  const asOf = new Date(ts).toISOString()
  switch (error._tag) {
    case "AskTimeout":
      return `the ledger did not show its books as of ${asOf} within ${error.timeoutMillis} ms: it shows them once the ` +
        `execution desk has marked that bar, so the desk (or the ledger) may be down`
    case "NoReply":
      return `the ledger did not show its books as of ${asOf}: it ${error.reason === "unanswered" ? "dropped the request unanswered" : error.reason}` +
        (error.detail === undefined ? "" : ` (${error.detail})`)
    case "MailboxFull":
      return `the ledger did not show its books as of ${asOf}: its mailbox was full (${error.capacity} messages)`
  }
}
