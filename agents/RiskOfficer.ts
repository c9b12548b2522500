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
 * Reduced intents (`workRemainders`, `RunStarted.reducedIntents`): an intent a rule or a gate cut
 * leaves its symbol's target — the quantity the decision was sized to — to be worked
 * (`Officer.working`). On each next bar of the symbol whose consensus stands, the coordinator sends
 * the remainder; it is sized against the books as they will stand (an order of the symbol still in
 * flight is replaced by it, as a decision's would be, so nothing is ordered twice) and judged like
 * any intent, its `remainderOf` naming the decision. Reached (nothing left, or less than one unit
 * with whole units) or let through whole, the work is done; cut again, it goes on; rejected by a
 * rule, a gate or the state, it is judged again on the next bar. While an intent of the symbol
 * waits for an operator nothing more is ordered; the operator's rejection (or the `reject` policy's)
 * ends the work. A new decision for the symbol replaces it.
 *
 * With a volume limit (`ExecutionConfig.maxVolumePercent`) an order may work at the desk for bars,
 * partly filled: it is projected for what is left of it (`BooksView.left`; its fills are in the
 * books), and a target judged while it works supersedes it — replaced by the new order, or, when
 * the judgement orders nothing (reached, rejected, held for an operator), cancelled at the desk
 * (`PlaceOrders.superseded`). Its later parts are not judged again: the verdict was for the whole
 * order, the parts add up to at most it, and the desk keeps every part within the cash at hand.
 * So too the order placed toward a worked target (`keepWorkingOrders`, `RunStarted.workingOrders`):
 * while the desk holds it, the target's remainder is not sized again — placed again, it would be a
 * new order for the same target on every bar, each with its own commission minimum and one more
 * toward `max_orders_per_day` (and past that rule's count, rejected, it would cancel the order
 * working) — and once it is done (filled, or cut for cash) what is left of the target is worked as
 * before. Runs recorded before it placed the remainder again on every bar, and replay so.
 *
 * A rejection in the `halted` state is the state's alone (no rule or gate is evaluated) and the same
 * whatever the books, until the state changes: the answer names those rounds (`standing`), and the
 * coordinator does not send them again until then (`RunStarted.stateRejections`).
 *
 * Approval: an intent above the strategy's thresholds needs a human. With no human (a backtest)
 * the strategy's policy decides: `approve` and `reject` are applied at once (and recorded as
 * such), `pause` holds the intent until `ResolveApproval` arrives — the backtest driver stops
 * feeding bars until then.
 *
 * The breakers trip on the bar whose marks cross their limit (runs whose `RunStarted` says
 * `breakers: "marks"` or `"fills"`; `breakersOnMarks`), or, with `fills`, whose same-close fills
 * take equity past it: the ledger tells the officer of a crossing
 * (`BooksMarked`), the state moves then, and the change is held for the log to record before the
 * timestamp's first `Judge` or at its end — a fixed place, whenever the message was handled
 * (docs/backtest-engine.md). A `Judge` checks the breakers on its books first, before any intent, so
 * one handled before the ledger's word records the same change at the same place. Runs recorded
 * before check them only with each intent, as they did.
 *
 * Operators move the trading state with `SetTradingState` (halt, reduce only, resume): a halt is
 * lifted only that way, and lifting one rebases the ledger's risk marks (peak, day start) so the
 * breaker does not trip again on the loss that was acknowledged. A halt or a reduce refuses the
 * intents held for an operator at once (a run waiting for an answer takes commands: nothing held
 * could pass either state, as in nautilus_trader's risk engine a halted or reducing state denies
 * what is submitted, not what is already out).
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
import { MICROS_PER_UNIT } from "../src/trading/Money.js"
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
  /**
   * Work what a rule or a gate cut off an intent on the symbol's next bars (`RunStarted.reducedIntents`:
   * new runs); off, a reduced intent is done once its cut order is placed (runs recorded before).
   */
  readonly workRemainders?: boolean
  /**
   * The breakers are checked at every mark (`RunStarted.breakers`: `marks`, `fills`): on the ledger's word
   * (`BooksMarked`), and on the books before a batch's first intent. Off — runs recorded before it —
   * they are checked only with each intent, as those runs recorded it.
   */
  readonly breakersOnMarks?: boolean
  /**
   * With a volume limit, the order placed toward a worked target works on until it is done, its
   * remainder not sized and placed again while it does (`RunStarted.workingOrders`: new runs). Off —
   * runs recorded before it — the remainder is placed again on every bar, replacing it, as they recorded.
   */
  readonly keepWorkingOrders?: boolean
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
  /** The worked target it was placed toward (its `Work.from`), when it was one (`keepWorkingOrders`). */
  readonly work?: RoundId | undefined
}

/** A decided target not reached yet: a rule or a gate cut the intent toward it (`Officer.working`). */
interface Work {
  /** The round whose decision set it. */
  readonly from: RoundId
  /** The target position in signed micro-units: what that decision's intent was sized to. */
  readonly target: number
}

interface Held {
  readonly intent: OrderIntent
  readonly quantity: number
  /** The round whose decision set the target the intent works toward (its own, for a decision's). */
  readonly from: RoundId
  /** Whether it leaves part of the target to work once approved (it was reduced). */
  readonly rest: boolean
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
  // The verdict is a value that does not change: each check's attributes are made when the trace is
  // read, not on the path from the tick to its order (seven events on every verdict of a paper run).
  for (const rule of verdict.rules) {
    span.event(`rule ${rule.name}`, () => ({ rule: rule.rule, kind: rule.kind, category: rule.category, ...measured(rule) }))
  }
  for (const gate of verdict.gates) span.event(`gate ${gate.gate}`, () => ({ gate: gate.gate, ...measured(gate) }))
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
  /**
   * `ordersToday` by symbol (RiskContext.ordersTodayBySymbol). Without a prototype: a symbol named
   * like an `Object.prototype` member (`valueOf`) counts from 0, not from the inherited function;
   * and such an object is a dictionary from the start, where a `{}` given each day's symbols in
   * that day's order made V8 a hidden class per order (an order a bar: 2-3 times slower to count).
   */
  ordersBySymbol: Record<string, number> = Object.create(null)

  /** Count an order placed today. */
  counted(symbol: string): void {
    this.ordersToday++
    this.ordersBySymbol[symbol] = (this.ordersBySymbol[symbol] ?? 0) + 1
  }
  /** Intents waiting for a human under the `pause` policy, by round. */
  readonly held = new Map<RoundId, Held>()
  /**
   * By symbol, the decided targets a rule or a gate kept from being reached, worked bar by bar until
   * reached, replaced by a new decision, or given up on an operator's rejection.
   */
  readonly working = new Map<string, Work>()
  /** Whether an intent of `symbol` waits for an operator (the `pause` policy). */
  holds(symbol: string): boolean {
    for (const held of this.held.values()) if (held.intent.symbol === symbol) return true
    return false
  }
  /** The next-open orders placed, by symbol (the desk holds at most one a symbol), until the books show them gone. */
  readonly placed = new Map<string, Placed>()

  /**
   * Remember an order placed (it replaces its symbol's earlier one at the desk), and the worked
   * target it goes toward (`work`), if any. A same-close order fills at once — whole, unless a
   * volume limit (`limited`) leaves part of it working.
   */
  place(order: Order, price: number, at: number, limited: boolean, work: RoundId | undefined): void {
    if (order.fillTiming !== "next_open" && !limited) return
    const placed: Placed = { id: order.id, symbol: order.symbol, side: order.side, quantity: order.quantity, price, at }
    this.placed.set(order.symbol, work === undefined ? placed : { ...placed, work })
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
    // With a volume limit, an order partly filled is in the books for what filled: only the rest is to come.
    if (books.left !== undefined) {
      for (const { left, order } of books.left) {
        for (const [symbol, placed] of this.placed) {
          if (placed.id === order && left < placed.quantity) this.placed.set(symbol, { ...placed, quantity: left })
        }
      }
    }
    return this.placed
  }

  constructor(at: Timestamp) {
    this.status = TradingState.initial(at)
  }
}

/** What `judgeOne` sizes: a decision, or the remainder of an earlier one (`work`). */
interface Target {
  readonly round: RoundId
  readonly symbol: Decision["symbol"]
  readonly ts: Timestamp
  readonly action: Decision["action"]
  readonly work?: Work | undefined
}

/** The direction toward a target (signed micro-units): what a remainder's intent is sized for. */
const actionOf = (target: number): Decision["action"] => target > 0 ? "long" : target < 0 ? "short" : "flat"

/** The rounds of `request` whose symbol's target is still worked (`Judge`'s `working`). */
const stillWorking = (officer: Officer, request: Judge): ReadonlyArray<RoundId> => {
  if (officer.working.size === 0) return []
  const rounds: Array<RoundId> = []
  for (const remainder of request.remainders ?? []) if (officer.working.has(remainder.symbol)) rounds.push(remainder.round)
  for (const decision of request.decisions) if (officer.working.has(decision.symbol)) rounds.push(decision.round)
  return rounds
}

export const make = (options: RiskOptions) => {
  const { log } = options
  /** A volume limit (`ExecutionConfig.maxVolumePercent`): orders may work for bars, partly filled. */
  const limited = options.execution.maxVolumePercent !== undefined
  /** The order toward a worked target works on until it is done (`RiskOptions.keepWorkingOrders`). */
  const keepsWork = limited && options.keepWorkingOrders === true

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

  /**
   * A new UTC day: the day's order counts start again, and a `reducing` the daily loss breaker set is
   * lifted. `held`: its change is held for the log to record at a fixed point of the slice (`BooksMarked`).
   */
  const newDay = (officer: Officer, now: number, held = false): void => {
    const day = Math.floor(now / DAY_MS)
    if (day === officer.day) return
    officer.day = day
    officer.ordersToday = 0
    officer.ordersBySymbol = Object.create(null)
    const started = TradingState.startTradingDay(officer.status, now as Timestamp)
    if (started.transition !== null) {
      officer.status = started.status
      if (held) log.holdTransition(started.transition)
      else log.emit("TradingStateChanged", { transition: started.transition })
    }
  }

  /**
   * The breakers at the ledger's marks, with no intent (`breakersOnMarks`): the trading state moves
   * if one trips. `held` as for `newDay`.
   */
  const checkBreakers = (officer: Officer, marks: RiskCheck.RiskMarks, now: number, held: boolean): void => {
    const tripped = RiskCheck.breakers(marks, now as Timestamp, options.limits, officer.status.state)
    if (tripped === null) return
    const moved = TradingState.apply(officer.status, tripped)
    if (Either.isLeft(moved)) return
    officer.status = moved.right.status
    if (held) log.holdTransition(moved.right.transition)
    else log.emit("TradingStateChanged", { transition: moved.right.transition })
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
    /** With a volume limit: symbols whose working order a judged target ends without an order of its own. */
    const superseded: Array<{ readonly symbol: OrderIntent["symbol"]; readonly round: RoundId }> = []
    const blocked: Array<RoundId> = []
    const refused: Array<RoundId> = []
    const standing: Array<RoundId> = []
    const reasons: Array<string> = []
    let rejected = 0
    const projected = new Projection(books.snapshot)
    const waiting = officer.waiting(books)
    for (const placed of waiting.values()) projected.apply(placed.symbol, placed.side, placed.quantity, placed.price)
    /** Size and judge one target, without the order of its symbol still waiting (the new one replaces it). */
    const one = (target: Target, price: number) => {
      // An order of this symbol still waiting is replaced by the next one: sized and judged without it.
      // (A symbol decided on has a bar, at whose open it filled: this is for safety, not the rule.)
      const earlier = waiting.get(target.symbol)
      if (earlier !== undefined) projected.apply(earlier.symbol, earlier.side === "buy" ? "sell" : "buy", earlier.quantity, earlier.price)
      const quantity = judgeOne(officer, target, price, books, projected, now, trace, orders, blocked, refused, standing, reasons)
      if (quantity < 0) rejected++
      if (quantity <= 0 && earlier !== undefined) {
        if (limited && !blocked.includes(target.round)) {
          // With a volume limit an order works for bars: a target judged since — reached, rejected,
          // held for an operator — supersedes what is left of it, rather than let it trade on toward
          // the old one. (Blocked — not judged — it stands, as every order does when nothing can judge.)
          superseded.push({ symbol: target.symbol, round: target.round })
          officer.placed.delete(target.symbol)
        } else {
          projected.apply(earlier.symbol, earlier.side, earlier.quantity, earlier.price)
        }
      }
    }
    // What earlier decisions left to do first: a desk finishes the orders it was given before new ones.
    const remainders = request.remainders ?? []
    for (const remainder of remainders) {
      const work = officer.working.get(remainder.symbol)
      // Nothing left (a new decision replaced it, an operator said no), or an intent of it waits for one.
      if (work === undefined || officer.holds(remainder.symbol)) continue
      // The order placed toward it still works at the desk (a volume limit): it goes on, as it is —
      // sized and placed again, it would be a new order for the same target, with a commission
      // minimum of its own and one more toward the day's orders. What it leaves is worked once it is done.
      if (keepsWork && waiting.get(remainder.symbol)?.work === work.from) continue
      one({ round: remainder.round, symbol: remainder.symbol, ts: request.ts, action: actionOf(work.target), work }, remainder.close)
    }
    for (let i = 0; i < request.decisions.length; i++) {
      const decision: Decision = request.decisions[i]!
      if (decision.action === "hold") continue
      // A new consensus: what was worked toward the symbol's old target is not any more.
      officer.working.delete(decision.symbol)
      one(decision, request.closes[i]!)
    }
    if (blocked.length > 0) log.emit("ExecutionBlocked", { ts: request.ts, rounds: blocked, reason: reasons.join("; ") })
    return { orders, superseded, rejected, blocked, refused, standing, working: stillWorking(officer, request) }
  }

  /**
   * Size and judge one decision (or remainder: `work`) against the projected books: the quantity
   * ordered (the order pushed, the books projected, the order remembered), 0 for none, -1 for a
   * rejection. With `workRemainders`, what the verdict leaves of the target is worked on the
   * symbol's next bar (`Officer.working`), and a remainder reached or answered is done.
   */
  const judgeOne = (
    officer: Officer,
    decision: Target,
    price: number,
    books: BooksView,
    projected: Projection,
    now: number,
    trace: Trace | undefined,
    orders: Array<Order>,
    blocked: Array<RoundId>,
    refused: Array<RoundId>,
    standing: Array<RoundId>,
    reasons: Array<string>
  ): number => {
    if (decision.action === "hold") return 0
    const held = projected.quantityOf(decision.symbol)
    const snapshot = projected.books()
    const input = {
      round: decision.round,
      symbol: decision.symbol,
      ts: decision.ts,
      direction: decision.action,
      currentQuantity: held,
      equity: snapshot.equity,
      referencePrice: price
    }
    const work = decision.work
    const sized = work === undefined ? Sizing.intentFor(input, options.sizing) : Sizing.remainderFor(input, work.target, options.sizing)
    if (Either.isLeft(sized)) {
      blocked.push(decision.round)
      reasons.push(`${decision.round}: ${sized.left.message}`)
      trace?.event("sizing failed", { "swarm.round": decision.round, reason: sized.left.message })
      return 0
    }
    if (Option.isNone(sized.right)) {
      // The target is reached (with whole units, less than one is left): nothing more to work.
      if (work !== undefined) officer.working.delete(decision.symbol)
      return 0
    }
    const intent: OrderIntent = work === undefined ? sized.right.value : { ...sized.right.value, remainderOf: work.from }
    /** Whether part of the target is left once what is let through fills: worked on the next bar, or done. */
    const leaves = (left: boolean) => {
      if (options.workRemainders !== true) return
      if (left) officer.working.set(intent.symbol, work ?? { from: intent.round, target: Math.round(intent.targetQuantity * MICROS_PER_UNIT) })
      else officer.working.delete(intent.symbol)
    }
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
        quantity = verdict.quantity
        leaves(false)
        break
      case "reduced":
        quantity = verdict.quantity
        leaves(true)
        break
      case "rejected":
        refusedIt = true
        // A decision's intent is offered again while its consensus stays; a remainder is worked on.
        if (work === undefined) refused.push(intent.round)
        // Halted, nothing passes whatever the books: the same answer until the state changes.
        if (verdict.state === "halted") standing.push(intent.round)
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
          const rest = verdict.quantity < intent.quantity
          officer.held.set(intent.round, { intent, quantity: verdict.quantity, wait, from: work?.from ?? intent.round, rest })
          // Worked no further while it waits (`Officer.holds`); the answer settles it (ResolveApproval).
          if (rest || work !== undefined) leaves(true)
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
          if (approved) {
            quantity = verdict.quantity
            leaves(verdict.quantity < intent.quantity)
          } else {
            // An answer to the idea: it holds until the consensus changes.
            leaves(false)
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
      // Placed toward a target still worked (reduced): it is that target's order (`keepWorkingOrders`).
      officer.place(placed, intent.referencePrice, decision.ts, limited, keepsWork ? officer.working.get(placed.symbol)?.from : undefined)
      projected.apply(intent.symbol, intent.side, quantity, intent.referencePrice)
    }
    return refusedIt ? -1 : quantity
  }

  /**
   * Answer held intent `round`: out of the held, its `ApprovalResolved` recorded; rejected (or
   * expired), its target is given up (an answer to the idea); approved whole, it is reached once
   * filled. The caller places an approved one.
   */
  const settle = (officer: Officer, round: RoundId, held: Held, outcome: "approved" | "rejected" | "expired", by: string, reason: string) => {
    officer.held.delete(round)
    Metrics.approvalWaiting(-1)
    log.emit("ApprovalResolved", { round, outcome, by, reason })
    if (outcome !== "approved") Metrics.rejected("approval", outcome)
    const work = officer.working.get(held.intent.symbol)
    if (work !== undefined && work.from === held.from && (outcome !== "approved" || !held.rest)) officer.working.delete(held.intent.symbol)
    if (held.wait !== undefined) {
      held.wait.attribute("approval.outcome", outcome)
      held.wait.attribute("approval.by", by)
      held.wait.end()
    }
  }

  return Actor.make({
    protocol: RiskProtocol,
    // A message on every bar of a run (src/actor/Behavior.ts).
    busy: true,
    setup: () => Effect.map(Clock.currentTimeMillis, (now) => new Officer(now as Timestamp)),
    // The trading state outlives a crash (see the module comment).
    onRestart: (officer) => Effect.succeed(officer),
    behavior: (officer, message, context) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        switch (message._tag) {
          case "Judge": {
            // What the ledger's marks of this slice moved is recorded before it is judged on.
            log.releaseTransitions()
            newDay(officer, now)
            const books = yield* options.ledger().ask(viewBooks({ asOf: message.ts }), { timeout: options.viewTimeoutMillis }).pipe(
              Effect.either
            )
            if (Either.isLeft(books)) {
              const decided = message.decisions.map((d) => d.round)
              // Remainders (runs that work them) are blocked too: they are worked on the next bar.
              const rounds = message.remainders === undefined ? decided : [...message.remainders.map((r) => r.round), ...decided]
              log.emit("ExecutionBlocked", { ts: message.ts, rounds, reason: unseenBooks(books.left, message.ts) })
              const working = stillWorking(officer, message)
              yield* context.reply(message, { placed: 0, rejected: 0, pending: officer.held.size, blocked: rounds, refused: [], working })
              return officer
            }
            // The books' breakers before any intent, as their marks would have had them (whichever
            // of the ledger's word and this batch came first, the same change at the same place).
            if (options.breakersOnMarks === true) {
              const view = books.right
              checkBreakers(officer, { equity: view.snapshot.equity, peakEquity: view.peakEquity, dayStartEquity: view.dayStartEquity }, now, false)
            }
            const { blocked, orders, refused, rejected, standing, superseded, working } = judge(officer, message, books.right, now, context.trace)
            if (orders.length > 0 || superseded.length > 0) {
              yield* options.desk().tell(placeOrders({ ts: message.ts, orders, ...(superseded.length === 0 ? {} : { superseded }) }))
            }
            yield* context.reply(message, {
              placed: orders.length,
              rejected,
              pending: officer.held.size,
              blocked,
              refused,
              working,
              ...(standing.length === 0 ? {} : { standing })
            })
            return officer
          }
          case "ResolveApproval": {
            const held = officer.held.get(message.round)
            if (held === undefined) return officer
            const outcome = message.approved ? "approved" : message.expired ? "expired" : "rejected"
            settle(officer, message.round, held, outcome, message.by, message.reason)
            if (message.approved) {
              const approved = order(held.intent, held.quantity)
              officer.counted(approved.symbol)
              const work = officer.working.get(approved.symbol)
              officer.place(approved, held.intent.referencePrice, now, limited, keepsWork && work?.from === held.from ? work.from : undefined)
              const place = options.desk().tell(placeOrders({ ts: now as Timestamp, orders: [approved] }))
              // Its execution belongs to the traced round that asked for it.
              yield* (held.wait === undefined ? place : Effect.withParentSpan(place, held.wait.span))
            }
            return officer
          }
          case "BooksMarked": {
            // The ledger's marks crossed a breaker's limit (or a day starts after a day's loss did):
            // the state moves now, on this bar; the change is recorded before the slice's next
            // judgement or at its end, which do not depend on when this message was handled.
            newDay(officer, now, true)
            checkBreakers(officer, message, now, true)
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
            // Tightened (halt, reduce): every intent held for an operator is refused, right after the
            // change. A held intent is never risk-reducing (those need no approval), so neither state
            // would let it through; left held, an approval would place an order the state forbids.
            // Only a command taken while the run waits for an answer finds one held
            // (`TradingStateRequested.waiting`): runs recorded before took none, and replay as they ran.
            if (message.to !== "active") {
              const word = message.to === "halted" ? "halted" : "reduce-only"
              for (const [round, held] of [...officer.held]) {
                settle(officer, round, held, "rejected", message.actor, `refused as the run went ${word} (${message.reason}): a held intent is not risk-reducing, and the state lets none through`)
              }
            }
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
