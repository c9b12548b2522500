/**
 * The risk officer between a real ledger agent (or a stub showing chosen books) and a recording
 * desk: verdicts and the orders they let through, the approval policies, a batch judged on the
 * books its earlier intents leave, a trading state that outlives a crash, the daily order count, and
 * the breakers on the ledger's word (`BooksMarked`): recorded at the same place whenever it comes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as LedgerAgent from "../../agents/Ledger.js"
import * as RiskOfficer from "../../agents/RiskOfficer.js"
import type { Action, Decision } from "../../schemas/Decision.js"
import { SizingConfig } from "../../schemas/Execution.js"
import type { RoundId, Symbol } from "../../schemas/Ids.js"
import { MetricsConfig } from "../../schemas/Metrics.js"
import { ApprovalConfig, RiskLimits } from "../../schemas/Risk.js"
import { Rule } from "../../schemas/Rule.js"
import { GateName } from "../../schemas/Verdict.js"
import {
  Book,
  BooksMarked,
  type BooksView,
  GetTradingStatus,
  Judge,
  SetTradingState,
  ViewBooks,
  type LedgerProtocol,
  ResolveApproval
} from "../../schemas/TradingProtocol.js"
import * as Actor from "../../src/actor/Actor.js"
import type { ActorRef } from "../../src/actor/ActorRef.js"
import * as Rules from "../../src/trading/Rules.js"
import { books } from "../trading/portfolioFixtures.js"
import { AAA, at, bar, BBB, execution, fillOf, inSpine, order, recordingDesk, recordingLedger, RUN, type Spine, units, wire } from "./spine.js"

const CASH = 100_000

interface Setup {
  readonly sizing?: typeof SizingConfig.Encoded
  readonly limits?: typeof RiskLimits.Encoded
  readonly approval?: typeof ApprovalConfig.Encoded
  readonly rules?: ReadonlyArray<unknown>
  readonly allowShort?: boolean
  /** A stub ledger showing these books instead of a real ledger agent. */
  readonly view?: () => BooksView
  /** Work reduced intents' remainders (new runs); off by default here, as in runs recorded before. */
  readonly work?: boolean
  /** Check the breakers at every mark (`RunStarted.breakers`: `marks`). */
  readonly breakersOnMarks?: boolean
}

const spawnRisk = (spine: Spine, setup: Setup = {}) => {
  const ledger: ActorRef<LedgerProtocol, "backpressure"> = setup.view === undefined
    ? spine.inSystem(Actor.spawn(
      LedgerAgent.make({ log: spine.log, initialCash: units(CASH), symbols: [AAA, BBB], metrics: Schema.decodeUnknownSync(MetricsConfig)({}) }),
      { name: "ledger" }
    ))
    : spine.inSystem(Actor.spawn(recordingLedger(setup.view).spec, { name: "ledger" }))
  const desk = recordingDesk()
  const deskRef = spine.inSystem(Actor.spawn(desk.spec, { name: "desk" }))
  const risk = spine.inSystem(Actor.spawn(
    RiskOfficer.make({
      log: spine.log,
      run: RUN,
      rules: Rules.make((setup.rules ?? []).map((r) => Schema.decodeUnknownSync(Rule)(r))),
      limits: Schema.decodeUnknownSync(RiskLimits)(setup.limits ?? {}),
      approval: Schema.decodeUnknownSync(ApprovalConfig)(setup.approval ?? {}),
      sizing: Schema.decodeUnknownSync(SizingConfig)(setup.sizing ?? {}),
      allowShort: setup.allowShort ?? false,
      execution: execution(),
      approvalTimeoutMillis: 60_000,
      viewTimeoutMillis: 5_000,
      ledger: wire(ledger),
      desk: wire(deskRef),
      workRemainders: setup.work === true,
      ...(setup.breakersOnMarks === true ? { breakersOnMarks: true } : {})
    }),
    { name: "risk" }
  ))
  /** The bars of `ts` reach the ledger (as the desk's Book would bring them) at virtual time `ts`. */
  const market = (ts: number, closes: Partial<Record<Symbol, number>>) => {
    spine.world.advanceTo(ts)
    const bars = Object.entries(closes).map(([symbol, close]) => bar(symbol as Symbol, ts, { close: close! }))
    spine.send(ledger.tell(new Book({ ts: ts as never, bars, fills: [], open: [] })))
  }
  const judge = (
    ts: number,
    decisions: ReadonlyArray<readonly [Symbol, Action, number]>,
    remainders: ReadonlyArray<readonly [Symbol, number]> = []
  ) => {
    if (spine.world.now < ts) spine.world.advanceTo(ts)
    return spine.inSystem(risk.ask(
      new Judge({
        ts: ts as never,
        decisions: decisions.map(([symbol, action]) => decision(symbol, ts, action)),
        closes: decisions.map(([, , close]) => close),
        ...(remainders.length === 0 ? {} : {
          remainders: remainders.map(([symbol, close]) => ({ round: `${symbol}@${ts}` as RoundId, symbol, close: close as never }))
        })
      }),
      { timeout: "1 minute" }
    ))
  }
  const status = () => spine.inSystem(risk.ask(new GetTradingStatus()))
  const operator = (to: "active" | "reducing" | "halted", reason: string) =>
    spine.inSystem(Effect.either(risk.ask(new SetTradingState({ to, actor: "alice", reason }))))
  const view = (asOf: number) => spine.inSystem(ledger.ask(new ViewBooks({ asOf: asOf as never })))
  let filled = 0
  /** The bars of `ts` (opening at their close) reach the ledger with the fills of every order not filled yet, as the desk would bring them. */
  const fillAt = (ts: number, closes: Partial<Record<Symbol, number>>) => {
    spine.world.advanceTo(ts)
    const bars = Object.entries(closes).map(([symbol, close]) => bar(symbol as Symbol, ts, { close: close! }))
    const fills = desk.orders().slice(filled).map((o) => fillOf(o, bars.find((b) => b.symbol === o.symbol)!))
    filled = desk.orders().length
    spine.send(ledger.tell(new Book({ ts: ts as never, bars, fills, open: [] })))
  }
  return { risk, ledger, desk, market, judge, status, operator, view, fillAt }
}

const decision = (symbol: Symbol, ts: number, action: Action): Decision => ({
  round: `${symbol}@${ts}` as RoundId,
  symbol,
  ts: ts as never,
  action,
  confidence: 1,
  votes: [],
  abstentions: [],
  dissent: [],
  disagreement: 0,
  participation: 1,
  quorumMet: true
})

const t1 = at(0, 15)
const t2 = at(0, 16)

describe("the risk officer", () => {
  it("gives a verdict with its gates for each intent and orders only what it approved or reduced", inSpine((spine) => {
    // Sizing asks for shorts the officer does not allow: the gates are the backstop.
    const { desk, judge, market } = spawnRisk(spine, { sizing: { value: 80, allowShort: true }, allowShort: false })
    market(t1, { [AAA]: 100, [BBB]: 50 })
    const answer = judge(t1, [[AAA, "long", 100], [BBB, "short", 50]])
    expect(answer).toEqual({ placed: 1, rejected: 1, pending: 0, blocked: [], refused: [`${BBB}@${t1}`], working: [] })

    const verdicts = spine.ofTag("VerdictGiven").map((e) => e.verdict)
    expect(verdicts.map((v) => [v.intent.symbol, v.outcome, v.quantity])).toEqual([[AAA, "reduced", 500], [BBB, "rejected", 0]])
    // 80 % of equity in AAA is above the 50 % hard cap: cut to 500 × 100 = 50 %.
    expect(verdicts[0]!.intent.quantity).toBe(800)
    // Every gate but money_range, which a verdict records only when it acts.
    expect(verdicts[0]!.gates.map((g) => g.gate)).toEqual(GateName.literals.filter((gate) => gate !== "money_range"))
    expect(verdicts[0]!.gates.find((g) => g.gate === "max_position")).toMatchObject({ result: "reduce", quantityAfter: 500 })
    // Selling what is not held, without allowShort.
    expect(verdicts[1]!.gates.find((g) => g.gate === "no_sell_beyond_held")).toMatchObject({ result: "reject" })

    expect(desk.orders()).toEqual([
      expect.objectContaining({
        symbol: AAA,
        side: "buy",
        quantity: 500,
        decidedAt: t1,
        round: `${AAA}@${t1}`,
        idempotencyKey: `${RUN}/${AAA}@${t1}`,
        fillTiming: "next_open"
      })
    ])
    expect(desk.placed).toHaveLength(1)
    expect(spine.log.rejected).toBe(1)
  }))

  it("sends nothing to the desk when every intent is rejected", inSpine((spine) => {
    const { desk, judge, market } = spawnRisk(spine, { sizing: { allowShort: true } })
    market(t1, { [BBB]: 50 })
    expect(judge(t1, [[BBB, "short", 50]])).toMatchObject({ placed: 0, rejected: 1 })
    expect(desk.placed).toEqual([])
  }))

  describe("approval above the threshold", () => {
    // 30 % of equity is above the 20 % threshold.
    const approval = (policy: "approve" | "reject" | "pause") => ({ sizing: { value: 30 }, approval: { notionalPctAbove: 20, policy } })

    it("policy approve: recorded as approved by the policy, and ordered", inSpine((spine) => {
      const { desk, judge, market } = spawnRisk(spine, approval("approve"))
      market(t1, { [AAA]: 100 })
      expect(judge(t1, [[AAA, "long", 100]])).toMatchObject({ placed: 1, pending: 0 })
      expect(spine.ofTag("ApprovalRequested")).toHaveLength(1)
      expect(spine.ofTag("ApprovalResolved")).toMatchObject([{ outcome: "approved", by: "policy:approve" }])
      expect(desk.orders()).toMatchObject([{ symbol: AAA, quantity: 300 }])
      expect(spine.log.pendingApprovals.size).toBe(0)
    }))

    it("policy reject: recorded as rejected, nothing ordered", inSpine((spine) => {
      const { desk, judge, market } = spawnRisk(spine, approval("reject"))
      market(t1, { [AAA]: 100 })
      expect(judge(t1, [[AAA, "long", 100]])).toMatchObject({ placed: 0, rejected: 1, pending: 0 })
      expect(spine.ofTag("ApprovalResolved")).toMatchObject([{ outcome: "rejected", by: "policy:reject" }])
      expect(spine.log.rejected).toBe(1)
      expect(desk.placed).toEqual([])
    }))

    it("policy pause: the intent is held until ResolveApproval approves it, then ordered once", inSpine((spine) => {
      const { desk, judge, market, risk } = spawnRisk(spine, approval("pause"))
      market(t1, { [AAA]: 100 })
      expect(judge(t1, [[AAA, "long", 100]])).toMatchObject({ placed: 0, rejected: 0, pending: 1 })
      const round = `${AAA}@${t1}` as RoundId
      expect(spine.ofTag("ApprovalRequested")).toMatchObject([{ round, quantity: 300 }])
      expect(spine.ofTag("ApprovalResolved")).toEqual([])
      expect([...spine.log.pendingApprovals.keys()]).toEqual([round])
      expect(desk.placed).toEqual([])

      spine.send(risk.tell(new ResolveApproval({ round, approved: true, by: "alice", reason: "looks fine" })))
      expect(spine.ofTag("ApprovalResolved")).toMatchObject([{ round, outcome: "approved", by: "alice" }])
      expect(spine.log.pendingApprovals.size).toBe(0)
      expect(desk.orders()).toMatchObject([{ symbol: AAA, side: "buy", quantity: 300, round }])
      // Resolving it again changes nothing.
      spine.send(risk.tell(new ResolveApproval({ round, approved: true, by: "alice", reason: "again" })))
      expect(desk.orders()).toHaveLength(1)
    }))

    it("policy pause: rejected by ResolveApproval, nothing is ordered", inSpine((spine) => {
      const { desk, judge, market, risk } = spawnRisk(spine, approval("pause"))
      market(t1, { [AAA]: 100 })
      judge(t1, [[AAA, "long", 100]])
      const round = `${AAA}@${t1}` as RoundId
      spine.send(risk.tell(new ResolveApproval({ round, approved: false, by: "bob", reason: "too big" })))
      expect(spine.ofTag("ApprovalResolved")).toMatchObject([{ round, outcome: "rejected", by: "bob" }])
      expect(spine.log.pendingApprovals.size).toBe(0)
      expect(desk.placed).toEqual([])
    }))
  })

  it("judges each intent of a batch on the books the earlier ones leave: two cannot spend the same cash", inSpine((spine) => {
    // 40 % each; a 60 % reserve leaves room for exactly one of them.
    const { desk, judge, market } = spawnRisk(spine, { sizing: { value: 40 }, limits: { minCashReservePct: 60 } })
    market(t1, { [AAA]: 100, [BBB]: 100 })
    expect(judge(t1, [[AAA, "long", 100], [BBB, "long", 100]])).toMatchObject({ placed: 1, rejected: 1 })
    const verdicts = spine.ofTag("VerdictGiven").map((e) => e.verdict)
    expect(verdicts.map((v) => [v.intent.symbol, v.outcome])).toEqual([[AAA, "approved"], [BBB, "rejected"]])
    expect(verdicts[1]!.gates.find((g) => g.gate === "min_cash_reserve")).toMatchObject({ result: "reject" })
    expect(desk.orders()).toMatchObject([{ symbol: AAA, quantity: 400 }])
  }))

  it("keeps the trading state across a crash: halted by a drawdown stays halted after the restart", inSpine((spine) => {
    // The ledger shows equity 30 % below its peak (the hard limit is 25 %).
    const shown: BooksView = { snapshot: books(70_000), open: [], dayStartEquity: units(70_000), peakEquity: units(CASH) }
    const { desk, judge, risk, status } = spawnRisk(spine, { view: () => shown })
    expect(status().state).toBe("active")
    expect(judge(t1, [[AAA, "long", 100]])).toMatchObject({ placed: 0, rejected: 1 })
    expect(spine.ofTag("TradingStateChanged")).toMatchObject([{ transition: { from: "active", to: "halted", cause: "drawdown_halt" } }])
    expect(status()).toMatchObject({ state: "halted", cause: "drawdown_halt" })

    // A malformed Judge (a decision that is not one) crashes the officer.
    spine.send(risk.tell(new Judge({ ts: t2, decisions: [null as unknown as Decision], closes: [100] }, true)))
    expect(spine.lifecycle.filter((e) => e._tag === "ActorCrashed")).toMatchObject([{ actor: "/user/risk", message: "Judge" }])

    expect(status()).toMatchObject({ state: "halted", cause: "drawdown_halt" })
    expect(spine.lifecycle.filter((e) => e._tag === "ActorRestarted")).toHaveLength(1)
    // Still nothing passes, even with books that no longer show the drawdown.
    ;(shown as { peakEquity: number }).peakEquity = units(70_000)
    expect(judge(t2 + 1, [[AAA, "long", 100]])).toMatchObject({ placed: 0, rejected: 1 })
    expect(desk.placed).toEqual([])
  }))

  it("counts orders per UTC day: the day's limit resets on the next day", inSpine((spine) => {
    const { desk, judge, market } = spawnRisk(spine, {
      sizing: { value: 10 },
      rules: [{ kind: "max_orders_per_day", id: "one-a-day", name: "one order a day", params: { count: 1 } }]
    })
    const late = at(0, 22)
    const nextMorning = at(1, 9)
    market(t1, { [AAA]: 100, [BBB]: 100 })
    expect(judge(t1, [[AAA, "long", 100]])).toMatchObject({ placed: 1 })
    market(late, { [AAA]: 100, [BBB]: 100 })
    expect(judge(late, [[BBB, "long", 100]])).toMatchObject({ placed: 0, rejected: 1 })
    const refused = spine.ofTag("VerdictGiven")[1]!.verdict
    expect(refused.rules).toMatchObject([{ rule: "one-a-day", result: "reject", actual: 2 }])

    market(nextMorning, { [AAA]: 100, [BBB]: 100 })
    expect(judge(nextMorning, [[BBB, "long", 100]])).toMatchObject({ placed: 1 })
    expect(desk.orders().map((o) => [o.symbol, o.decidedAt])).toEqual([[AAA, t1], [BBB, nextMorning]])
  }))

  it("counts a symbol named like an Object.prototype member as any other: a rule scoped to it limits it", inSpine((spine) => {
    // `valueOf` is a valid symbol; counted in a plain `{}`, its count began from the inherited
    // function: the verdict's `actual` was "0function valueOf() { [native code] }11".
    const valueOf = "valueOf" as Symbol
    const { desk, judge } = spawnRisk(spine, {
      sizing: { value: 10 },
      view: () => ({ snapshot: { ...books(CASH), ts: t1 as never }, open: [], dayStartEquity: units(CASH), peakEquity: units(CASH) }),
      rules: [{ kind: "max_orders_per_day", id: "one-a-day", name: "one order a day", params: { count: 1 }, allowSymbols: [valueOf] }]
    })
    expect(judge(t1, [[valueOf, "long", 100]])).toMatchObject({ placed: 1 })
    expect(judge(t1 + 1, [[valueOf, "long", 100]])).toMatchObject({ placed: 0, rejected: 1 })
    expect(spine.ofTag("VerdictGiven")[1]!.verdict.rules).toMatchObject([{ rule: "one-a-day", result: "reject", actual: 2 }])
    expect(desk.orders().map((o) => o.symbol)).toEqual([valueOf])
  }))

  it("an operator halts and resumes trading; only an operator lifts a halt, and lifting it rebases the risk marks", inSpine((spine) => {
    const { desk, judge, ledger, market, operator, status, view } = spawnRisk(spine)
    // Hold 400 AAA bought at 100, then the price falls to 60 while trading is halted.
    const t0 = at(0, 14)
    spine.world.advanceTo(t0)
    const opening = bar(AAA, t0, { open: 100, close: 100 })
    spine.send(ledger.tell(new Book({ ts: t0, bars: [opening], fills: [fillOf(order({ symbol: AAA, side: "buy", quantity: 400, decidedAt: t0 - 1 }), opening)], open: [] })))
    market(t1, { [AAA]: 100, [BBB]: 100 })
    const halted = operator("halted", "news pending")
    expect(Either.isRight(halted) && halted.right).toMatchObject({ state: "halted", cause: "operator", actor: "alice" })
    expect(judge(t1, [[AAA, "long", 100]])).toMatchObject({ placed: 0, rejected: 1 })
    // Moving to the state it is in is refused with the reason.
    const again = operator("halted", "twice")
    expect(Either.isLeft(again) && again.left).toMatchObject({ _tag: "IllegalTransition", from: "halted", to: "halted" })
    expect(status().state).toBe("halted")
    market(t2, { [AAA]: 60, [BBB]: 60 })
    expect(view(t2).peakEquity).toBe(units(CASH))
    const resumed = operator("active", "news out, risk acknowledged")
    expect(Either.isRight(resumed) && resumed.right.state).toBe("active")
    expect(spine.ofTag("TradingStateChanged").map((e) => [e.transition.from, e.transition.to, e.transition.cause])).toEqual([
      ["active", "halted", "operator"],
      ["halted", "active", "operator"]
    ])
    // The ledger's peak and day start are now the equity the halt was lifted at.
    const marks = view(t2)
    expect(marks.snapshot.equity).toBe(units(CASH - 400 * 40))
    expect(marks.peakEquity).toBe(marks.snapshot.equity)
    expect(marks.dayStartEquity).toBe(marks.snapshot.equity)
    expect(judge(t2, [[BBB, "long", 60]])).toMatchObject({ placed: 1 })
    expect(desk.orders()).toHaveLength(1)
  }))

  it("says which refusals the halted state alone made (standing): not a gate's, nor reducing's, whose answer moves with the books", inSpine((spine) => {
    const { judge, market, operator } = spawnRisk(spine, { sizing: { value: 20, allowShort: true }, allowShort: false })
    market(t1, { [AAA]: 100, [BBB]: 50 })
    // A gate's refusal (no shorts): judged again as now.
    expect(judge(t1, [[BBB, "short", 50]])).toEqual({ placed: 0, rejected: 1, pending: 0, blocked: [], refused: [`${BBB}@${t1}`], working: [] })
    // Reducing: opening a position is refused, but whether an order reduces depends on the position held.
    operator("reducing", "cautious")
    market(t2, { [AAA]: 100, [BBB]: 50 })
    const reducing = judge(t2, [[AAA, "long", 100]])
    expect(reducing).toMatchObject({ rejected: 1, refused: [`${AAA}@${t2}`] })
    expect(reducing).not.toHaveProperty("standing")
    // Halted: nothing passes whatever the books, until the state changes.
    operator("halted", "news pending")
    const t3 = at(0, 17)
    market(t3, { [AAA]: 100, [BBB]: 50 })
    expect(judge(t3, [[AAA, "long", 100], [BBB, "short", 50]])).toMatchObject({
      rejected: 2,
      refused: [`${AAA}@${t3}`, `${BBB}@${t3}`],
      standing: [`${AAA}@${t3}`, `${BBB}@${t3}`]
    })
  }))

  describe("with the breakers checked at every mark", () => {
    // The ledger's marks: equity 30 % below its peak (the hard limit is 25 %).
    const down: BooksView = { snapshot: books(70_000), open: [], dayStartEquity: units(70_000), peakEquity: units(CASH) }
    const marked = (ts: number) =>
      new BooksMarked({ ts: ts as never, equity: down.snapshot.equity, peakEquity: down.peakEquity, dayStartEquity: down.dayStartEquity })
    /** The events of the log without their sequence numbers (two spines' logs compared). */
    const lines = (spine: Spine) => spine.events.map((e) => JSON.stringify({ ...e, seq: 0 }))

    it("the ledger's word moves the state at once, and the change is recorded at the slice's end when nothing is judged", inSpine((spine) => {
      const { risk, status } = spawnRisk(spine, { view: () => down, breakersOnMarks: true })
      spine.world.advanceTo(t1)
      spine.send(risk.tell(marked(t1)))
      expect(status()).toMatchObject({ state: "halted", cause: "drawdown_halt" })
      // Held: not recorded where the officer happened to handle it, but the log counts it already.
      expect(spine.ofTag("TradingStateChanged")).toEqual([])
      expect(spine.log.tradingState).toBe("halted")
      spine.log.endSlice()
      expect(spine.ofTag("TradingStateChanged")).toMatchObject([{
        at: t1,
        transition: { from: "active", to: "halted", cause: "drawdown_halt", at: t1, reason: "equity 70000 is 30% below its peak of 100000 (limit 25%): trading halts" }
      }])
      // Told again (the same marks), nothing more moves.
      spine.send(risk.tell(marked(t1)))
      spine.log.endSlice()
      expect(spine.ofTag("TradingStateChanged")).toHaveLength(1)
    }))

    it("the ledger's word before the slice's judgement or after it: the same events, the change before the verdicts", () => {
      const run = (wordFirst: boolean) => {
        let out: Array<string> = []
        inSpine((spine) => {
          const { judge, risk } = spawnRisk(spine, { view: () => down, breakersOnMarks: true })
          spine.world.advanceTo(t1)
          if (wordFirst) spine.send(risk.tell(marked(t1)))
          expect(judge(t1, [[AAA, "long", 100]])).toMatchObject({ placed: 0, rejected: 1 })
          if (!wordFirst) spine.send(risk.tell(marked(t1)))
          spine.log.endSlice()
          expect(spine.events.map((e) => e._tag)).toEqual(["TradingStateChanged", "VerdictGiven"])
          expect(spine.ofTag("VerdictGiven")[0]!.verdict).toMatchObject({ outcome: "rejected", state: "halted", transition: null })
          out = lines(spine)
        })()
        return out
      }
      expect(run(false)).toEqual(run(true))
    })

    it("checked only with each intent (runs recorded before): the verdict carries the transition, and the ledger's word is not looked for", inSpine((spine) => {
      const { judge } = spawnRisk(spine, { view: () => down })
      judge(t1, [[AAA, "long", 100]])
      expect(spine.events.map((e) => e._tag)).toEqual(["TradingStateChanged", "VerdictGiven"])
      expect(spine.ofTag("VerdictGiven")[0]!.verdict).toMatchObject({ state: "halted", transition: { from: "active", to: "halted" } })
    }))
  })
})

describe("a reduced intent's remainder (runs that work them)", () => {
  const day = (d: number) => at(d, 15)
  /** 12,000 an order, closes included; 100 units a target. */
  const capped = (more: Setup = {}): Setup => ({
    sizing: { mode: "fixed_quantity", value: 100 },
    rules: [{ kind: "max_order_notional", id: "cap", name: "12k orders", params: { notional: "12000", exemptRiskReducing: false } }],
    work: true,
    ...more
  })
  const sent = (desk: ReturnType<typeof recordingDesk>) => desk.orders().map((o) => `${o.side} ${o.quantity}`)

  it("is judged again on each next bar until the target is reached; then nothing is judged or ordered", inSpine((spine) => {
    const { desk, fillAt, judge, market } = spawnRisk(spine, capped())
    market(day(0), { [AAA]: 100 })
    expect(judge(day(0), [[AAA, "long", 100]])).toMatchObject({ placed: 1, working: [] })
    fillAt(day(1), { [AAA]: 300 })
    // Flat at 300: 40 of the 100, and the rest to work.
    expect(judge(day(1), [[AAA, "flat", 300]])).toMatchObject({ placed: 1, working: [`${AAA}@${day(1)}`] })
    fillAt(day(2), { [AAA]: 300 })
    expect(judge(day(2), [], [[AAA, 300]])).toMatchObject({ placed: 1, working: [`${AAA}@${day(2)}`] })
    fillAt(day(3), { [AAA]: 300 })
    expect(judge(day(3), [], [[AAA, 300]])).toMatchObject({ placed: 1, working: [] })
    fillAt(day(4), { [AAA]: 300 })
    // Reached: asked again, nothing is judged, nothing ordered.
    expect(judge(day(4), [], [[AAA, 300]])).toMatchObject({ placed: 0, rejected: 0, working: [] })
    expect(sent(desk)).toEqual(["buy 100", "sell 40", "sell 40", "sell 20"])
    const verdicts = spine.ofTag("VerdictGiven").map((e) => e.verdict)
    expect(verdicts.map((v) => [v.outcome, v.intent.round, v.intent.remainderOf, v.intent.reason])).toEqual([
      ["approved", `${AAA}@${day(0)}`, undefined, "open"],
      ["reduced", `${AAA}@${day(1)}`, undefined, "close"],
      ["reduced", `${AAA}@${day(2)}`, `${AAA}@${day(1)}`, "close"],
      ["approved", `${AAA}@${day(3)}`, `${AAA}@${day(1)}`, "close"]
    ])
  }))

  it("works a short the same way, and a cover", inSpine((spine) => {
    const { desk, fillAt, judge, market } = spawnRisk(spine, capped({ allowShort: true, sizing: { mode: "fixed_quantity", value: 100, allowShort: true } }))
    market(day(0), { [AAA]: 300 })
    expect(judge(day(0), [[AAA, "short", 300]])).toMatchObject({ working: [`${AAA}@${day(0)}`] })
    for (const d of [1, 2]) {
      fillAt(day(d), { [AAA]: 300 })
      judge(day(d), [], [[AAA, 300]])
    }
    fillAt(day(3), { [AAA]: 300 })
    expect(judge(day(3), [[AAA, "flat", 300]])).toMatchObject({ working: [`${AAA}@${day(3)}`] })
    for (const d of [4, 5, 6]) {
      fillAt(day(d), { [AAA]: 300 })
      judge(day(d), [], [[AAA, 300]])
    }
    expect(sent(desk)).toEqual(["sell 40", "sell 40", "sell 20", "buy 40", "buy 40", "buy 20"])
  }))

  it("a new decision replaces the work: the old target's remainder is not ordered", inSpine((spine) => {
    const { desk, fillAt, judge, market } = spawnRisk(spine, capped())
    market(day(0), { [AAA]: 300 })
    expect(judge(day(0), [[AAA, "long", 300]])).toMatchObject({ working: [`${AAA}@${day(0)}`] })
    fillAt(day(1), { [AAA]: 300 })
    // Flat now: the 40 held are sold; the 60 never bought are no more to buy.
    expect(judge(day(1), [[AAA, "flat", 300]])).toMatchObject({ placed: 1, working: [] })
    fillAt(day(2), { [AAA]: 300 })
    expect(judge(day(2), [], [[AAA, 300]])).toMatchObject({ placed: 0, working: [] })
    expect(sent(desk)).toEqual(["buy 40", "sell 40"])
  }))

  it("rejected by a rule, it is judged again on the next bar, and goes on once the rule lets it", inSpine((spine) => {
    const oneADay = { kind: "max_orders_per_day", id: "one", name: "one a day", params: { count: 1, exemptRiskReducing: false } }
    const { desk, fillAt, judge, market } = spawnRisk(spine, capped({ rules: [...capped().rules!, oneADay] }))
    market(day(0), { [AAA]: 300 })
    judge(day(0), [[AAA, "long", 300]])
    // A second order the same day: refused, and the work goes on.
    market(at(0, 18), { [AAA]: 300 })
    expect(judge(at(0, 18), [], [[AAA, 300]])).toMatchObject({ placed: 0, rejected: 1, refused: [], working: [`${AAA}@${at(0, 18)}`] })
    fillAt(day(1), { [AAA]: 300 })
    expect(judge(day(1), [], [[AAA, 300]])).toMatchObject({ placed: 1, working: [`${AAA}@${day(1)}`] })
    expect(sent(desk)).toEqual(["buy 40", "buy 40"])
  }))

  it("an order of it still in flight is replaced by the next, not ordered again on top", inSpine((spine) => {
    // The desk still holds the sell of the first bar (no bar of AAA to fill it at since).
    const held = { symbol: AAA, quantity: 100, averagePrice: 300, marketValue: units(30_000), unrealizedPnl: units(0) } as never
    let shown: BooksView = { snapshot: { ...books(70_000, [held]), ts: day(0) as never }, open: [], dayStartEquity: units(CASH), peakEquity: units(CASH) }
    const { desk, judge } = spawnRisk(spine, capped({ view: () => shown }))
    expect(judge(day(0), [[AAA, "flat", 300]])).toMatchObject({ placed: 1, working: [`${AAA}@${day(0)}`] })
    shown = { ...shown, snapshot: { ...shown.snapshot, ts: day(1) as never }, open: [`${AAA}@${day(0)}` as never] }
    expect(judge(day(1), [], [[AAA, 300]])).toMatchObject({ placed: 1, working: [`${AAA}@${day(1)}`] })
    // Sized as if the first were not there (it is replaced): 100 left, cut to 40 — 40 in flight, not 80.
    const remainder = spine.ofTag("VerdictGiven")[1]!.verdict
    expect([remainder.intent.quantity, remainder.quantity]).toEqual([100, 40])
    expect(sent(desk)).toEqual(["sell 40", "sell 40"])
  }))

  describe("held for an operator", () => {
    // 40 at 300 is 12 % of equity, above the 10 % threshold: every buy of it waits for an operator.
    const paused = () => capped({ approval: { notionalPctAbove: 10, policy: "pause" } })

    it("is not worked while it waits; approved, what is left is worked; rejected, the work ends", inSpine((spine) => {
      const { desk, fillAt, judge, market, risk } = spawnRisk(spine, paused())
      market(day(0), { [AAA]: 300 })
      expect(judge(day(0), [[AAA, "long", 300]])).toMatchObject({ placed: 0, pending: 1, working: [`${AAA}@${day(0)}`] })
      market(day(1), { [AAA]: 300 })
      // Waiting: nothing judged, nothing asked twice.
      expect(judge(day(1), [], [[AAA, 300]])).toMatchObject({ placed: 0, pending: 1, working: [`${AAA}@${day(1)}`] })
      expect(spine.ofTag("VerdictGiven")).toHaveLength(1)
      spine.send(risk.tell(new ResolveApproval({ round: `${AAA}@${day(0)}` as RoundId, approved: true, by: "alice", reason: "ok" })))
      fillAt(day(2), { [AAA]: 300 })
      // 60 left, cut to 40, held again; the operator says no this time.
      expect(judge(day(2), [], [[AAA, 300]])).toMatchObject({ placed: 0, pending: 1, working: [`${AAA}@${day(2)}`] })
      expect(spine.ofTag("ApprovalRequested").map((e) => [e.intent.quantity, e.quantity, e.intent.remainderOf])).toEqual([
        [100, 40, undefined],
        [60, 40, `${AAA}@${day(0)}`]
      ])
      spine.send(risk.tell(new ResolveApproval({ round: `${AAA}@${day(2)}` as RoundId, approved: false, by: "bob", reason: "enough" })))
      market(day(3), { [AAA]: 300 })
      expect(judge(day(3), [], [[AAA, 300]])).toMatchObject({ placed: 0, pending: 0, working: [] })
      expect(spine.ofTag("VerdictGiven")).toHaveLength(2)
      expect(sent(desk)).toEqual(["buy 40"])
    }))

    it("the `reject` policy's answer ends the work too", inSpine((spine) => {
      const { desk, judge, market } = spawnRisk(spine, capped({ approval: { notionalPctAbove: 10, policy: "reject" } }))
      market(day(0), { [AAA]: 300 })
      expect(judge(day(0), [[AAA, "long", 300]])).toMatchObject({ placed: 0, rejected: 1, refused: [], working: [] })
      expect(desk.placed).toEqual([])
    }))
  })

  it("books it cannot see block the remainder too, said so, and it is worked on the next bar", inSpine((spine) => {
    const { desk, judge, market } = spawnRisk(spine, capped())
    market(day(0), { [AAA]: 300 })
    judge(day(0), [[AAA, "long", 300]])
    // The ledger has not booked day 1 (its desk is down, say): the books are not shown in time.
    expect(judge(day(1), [], [[AAA, 300]])).toMatchObject({ placed: 0, blocked: [`${AAA}@${day(1)}`], working: [`${AAA}@${day(1)}`] })
    expect(spine.ofTag("ExecutionBlocked")).toMatchObject([{ ts: day(1), rounds: [`${AAA}@${day(1)}`] }])
    expect(sent(desk)).toEqual(["buy 40"])
  }))

  it("off (a run recorded before): a reduced intent is done, a remainder sent is not judged", inSpine((spine) => {
    const { desk, fillAt, judge, market } = spawnRisk(spine, capped({ work: false }))
    market(day(0), { [AAA]: 300 })
    expect(judge(day(0), [[AAA, "long", 300]])).toMatchObject({ placed: 1, working: [] })
    fillAt(day(1), { [AAA]: 300 })
    expect(judge(day(1), [], [[AAA, 300]])).toMatchObject({ placed: 0, working: [] })
    expect(sent(desk)).toEqual(["buy 40"])
  }))
})
