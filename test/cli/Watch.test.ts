/**
 * The view `swarm runs watch` keeps of a run, folded from its events without any server: equity and
 * cash from portfolio snapshots, positions, the last N decisions and verdicts, approvals pending
 * until resolved, how the run ended; the line each event prints without a terminal; the frame a
 * terminal shows.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Metrics } from "../../schemas/Metrics.js"
import type { Money } from "../../schemas/Money.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import * as Watch from "../../src/cli/Watch.js"

const DAY = 86_400_000
const T0 = Date.UTC(2024, 0, 2)

/** An event with the fields the view reads; the rest of a real event does not matter to it. */
const ev = (seq: number, tag: RunEvent["_tag"], fields: Record<string, unknown>): RunEvent =>
  ({ _tag: tag, run: "run_1", seq, at: T0 + seq * DAY, ...fields }) as unknown as RunEvent

const intent = (round: string, symbol: string, side: "buy" | "sell", quantity: number) => ({
  round,
  symbol,
  ts: T0,
  side,
  quantity,
  currentQuantity: 0,
  targetQuantity: quantity,
  referencePrice: 10,
  reason: "open"
})

const snapshot = (cash: number, equity: number, positions: ReadonlyArray<{ symbol: string; quantity: number }>) =>
  ev(0, "PortfolioUpdated", {
    snapshot: {
      ts: T0,
      cash,
      equity,
      grossExposure: 0,
      netExposure: 0,
      realizedPnl: 5_000_000,
      unrealizedPnl: 0,
      positions: positions.map((p) => ({
        symbol: p.symbol,
        quantity: p.quantity,
        averagePrice: 10,
        realizedPnl: 0,
        markPrice: 11,
        marketValue: p.quantity * 11_000_000,
        unrealizedPnl: p.quantity * 1_000_000
      }))
    }
  })

const at = (seq: number, event: RunEvent): RunEvent => ({ ...event, seq, at: T0 + seq * DAY }) as RunEvent

const decision = (seq: number, symbol: string, action: string) =>
  ev(seq, "DecisionMade", { decision: { round: `${symbol}@${seq}`, symbol, ts: T0 + seq * DAY, action, confidence: 0.5 } })

const verdict = (seq: number, symbol: string, outcome: string, quantity: number, reasons: ReadonlyArray<string> = []) =>
  ev(seq, "VerdictGiven", { verdict: { outcome, quantity, reasons, policy: "pause", intent: intent(`${symbol}@${seq}`, symbol, "buy", 100) } })

const fold = (events: ReadonlyArray<RunEvent>, keep?: number) => events.reduce(Watch.step, Watch.initial("run_1", keep))

const metrics = { totalReturn: 0.1234, sharpe: 1.5, maxDrawdown: 0.05, tradeCount: 3 } as unknown as Metrics

describe("the watch view", () => {
  it("equity and cash come from the latest portfolio snapshot; positions from the latest snapshot of each symbol, flat ones left out", () => {
    const model = fold([
      ev(1, "RunStarted", { mode: "paper", symbols: ["AAA", "BBB", "CCC"], strategy: "str_1", strategyVersion: 1, seed: "0" }),
      at(2, snapshot(100_000_000_000, 100_000_000_000, [])),
      at(3, snapshot(90_000_000_000, 101_000_000_000, [{ symbol: "BBB", quantity: 50 }, { symbol: "AAA", quantity: 1000 }, { symbol: "CCC", quantity: 0 }]))
    ])
    expect(model.status).toBe("running")
    expect(model.mode).toBe("paper")
    expect(model.cash).toBe(90_000_000_000)
    expect(model.equity).toBe(101_000_000_000)
    expect(model.positions.map((p) => [p.symbol, p.quantity])).toEqual([["AAA", 1000], ["BBB", 50]])
    expect(model.seq).toBe(3)
    // A snapshot names only the positions its fills changed: the others stand; one gone flat goes.
    const later = Watch.step(model, at(4, snapshot(95_000_000_000, 102_000_000_000, [{ symbol: "AAA", quantity: 0 }, { symbol: "CCC", quantity: -20 }])))
    expect(later.positions.map((p) => [p.symbol, p.quantity])).toEqual([["BBB", 50], ["CCC", -20]])
  })

  it("the return is measured from the run's initial cash, not from the first snapshot (after the first fill)", () => {
    const run = [
      at(2, snapshot(200_000_000_000, 249_000_000_000, [])),
      at(3, snapshot(200_000_000_000, 256_058_270_000, []))
    ]
    const known = run.reduce(Watch.step, Watch.initial("run_1", Watch.KEEP, 250_000_000_000 as Money))
    expect(Watch.frame(known)[1]).toMatch(/^equity 256,058\.27  \+2\.42%  cash /)
    // From event 1000 on (--since), the same: the first snapshot seen is no starting point either.
    const since = [at(1_001, snapshot(200_000_000_000, 260_000_000_000, [])), at(1_002, snapshot(200_000_000_000, 255_000_000_000, []))]
      .reduce(Watch.step, { ...Watch.initial("run_1", Watch.KEEP, 250_000_000_000 as Money), seq: 1_000 })
    expect(Watch.frame(since)[1]).toMatch(/^equity 255,000\.00  \+2\.00%  cash /)
    // Unknown initial cash: no return at all until the metrics give one.
    const unknown = run.reduce(Watch.step, Watch.initial("run_1"))
    expect(Watch.frame(unknown)[1]).toMatch(/^equity 256,058\.27  cash /)
    const done = Watch.step(
      unknown,
      ev(4, "RunCompleted", { metrics: { ...metrics, totalReturn: 0.0242, initialCash: 250_000_000_000, finalEquity: 256_050_000_000 }, checksum: "abc" })
    )
    // The final frame says the run's final equity (marked at its end), and a return that agrees with its result.
    expect(Watch.frame(done)[1]).toMatch(/^equity 256,050\.00  \+2\.42%  cash /)
    expect(Watch.frame(done)[2]).toMatch(/^result: return \+2\.42%/)
  })

  it("keeps the last N decisions and verdicts, newest last", () => {
    const events = [1, 2, 3, 4, 5, 6, 7].flatMap((i) => [decision(i * 2, `S${i}`, "long"), verdict(i * 2 + 1, `S${i}`, "approved", 100)])
    const model = fold(events, 3)
    expect(model.decisions.map((d) => d.symbol)).toEqual(["S5", "S6", "S7"])
    expect(model.verdicts.map((v) => [v.symbol, v.seq])).toEqual([["S5", 11], ["S6", 13], ["S7", 15]])
    expect(fold(events, 0).decisions).toEqual([])
  })

  it("an approval is pending from its request until it is resolved, and none once the run has ended", () => {
    const requested = (seq: number, round: string) =>
      ev(seq, "ApprovalRequested", { round, intent: intent(round, "AAA", "buy", 50), quantity: 40, reasons: ["too big"], expiresAt: T0 + DAY })
    const two = fold([requested(1, "r1"), requested(2, "r2")])
    expect(two.pending.map((p) => [p.round, p.symbol, p.side, p.quantity])).toEqual([["r1", "AAA", "buy", 40], ["r2", "AAA", "buy", 40]])
    const one = Watch.step(two, ev(3, "ApprovalResolved", { round: "r1", outcome: "approved", by: "ops", reason: "" }))
    expect(one.pending.map((p) => p.round)).toEqual(["r2"])
    const ended = Watch.step(one, ev(4, "RunCompleted", { metrics, checksum: "abc" }))
    expect(ended.pending).toEqual([])
    expect(Watch.ended(ended)).toBe(true)
    expect(ended.metrics).toBe(metrics)
  })

  it("counts fills and trades, follows the trading state, and records a failure", () => {
    const model = fold([
      ev(1, "OrderFilled", { fill: { symbol: "AAA", side: "buy", quantity: 1, price: 10 } }),
      ev(2, "OrderFilled", { fill: { symbol: "AAA", side: "sell", quantity: 1, price: 11 } }),
      ev(3, "TradeClosed", { trade: { symbol: "AAA", side: "long", quantity: 1, pnl: 1_000_000 } }),
      ev(4, "TradingStateChanged", { transition: { from: "active", to: "halted", cause: "drawdown_halt", reason: "drawdown 30%" } }),
      ev(5, "RunFailed", { reason: "the risk officer is down" })
    ])
    expect([model.fills, model.trades, model.tradingState]).toEqual([2, 1, "halted"])
    expect(model.status).toBe("failed")
    expect(model.failure).toBe("the risk officer is down")
    expect(Watch.ended(model)).toBe(true)
  })

  it("an event already seen (a resumed stream repeating one) changes nothing", () => {
    const once = fold([decision(1, "AAA", "long"), ev(2, "OrderFilled", { fill: { symbol: "AAA", side: "buy", quantity: 1, price: 10 } })])
    const again = Watch.step(once, ev(2, "OrderFilled", { fill: { symbol: "AAA", side: "buy", quantity: 1, price: 10 } }))
    expect(again).toBe(once)
    expect(Watch.step({ ...Watch.initial("run_1"), seq: 10 }, decision(5, "AAA", "long")).decisions).toEqual([])
  })
})

describe("the lines of a watch without a terminal", () => {
  it("one line per meaningful event, with its sequence number and time; opinions and snapshots print none", () => {
    expect(Watch.line(decision(7, "AAA", "short"))).toBe("#7 2024-01-09 decision AAA short (confidence 0.50)")
    expect(Watch.line(verdict(8, "AAA", "rejected", 0, ["rule \"cap\": over the limit"]))).toBe(
      "#8 2024-01-10 verdict AAA buy 100: rejected: rule \"cap\": over the limit"
    )
    expect(Watch.line(verdict(9, "AAA", "reduced", 60, ["cash reserve"]))).toBe("#9 2024-01-11 verdict AAA buy 100: reduced to 60: cash reserve")
    // The rest of a reduced intent, worked on a later bar, says so: no decision line comes before it.
    const rest = verdict(11, "AAA", "approved", 100) as Extract<RunEvent, { _tag: "VerdictGiven" }>
    const worked = { ...rest, verdict: { ...rest.verdict, intent: { ...rest.verdict.intent, remainderOf: "AAA@9" } } } as RunEvent
    expect(Watch.line(worked)).toBe("#11 2024-01-13 verdict AAA buy 100 (the rest of a reduced intent): approved")
    // A rule stored before names were checked: what a terminal would act on is shown as its escape, in a line and in the frame.
    const hostile = verdict(10, "AAA", "rejected", 0, ["rule \"N\u001b[31mRED\u009b2J\u202e\": over the limit"])
    expect(Watch.line(hostile)).toBe("#10 2024-01-12 verdict AAA buy 100: rejected: rule \"N\\u001b[31mRED\\u009b2J\\u202e\": over the limit")
    const framed = Watch.frame(Watch.step(Watch.initial("run_1"), hostile), 200).join("\n")
    expect(framed).toContain("N\\u001b[31mRED")
    expect(framed).not.toMatch(/[\u001b\u009b\u202e]/)
    // Asked about reduced: the quantity the approval shows, not the intent's (they disagreed).
    expect(Watch.line(verdict(9, "AAA", "needs_approval", 74, ["notional 8,221 is 7.96% of equity"]))).toBe(
      "#9 2024-01-11 verdict AAA buy 100: reduced to 74, needs approval (pause): notional 8,221 is 7.96% of equity"
    )
    expect(Watch.line(verdict(9, "AAA", "needs_approval", 100, ["short"]))).toBe("#9 2024-01-11 verdict AAA buy 100: needs approval (pause): short")
    expect(Watch.line(ev(10, "ApprovalResolved", { round: "r1", outcome: "rejected", by: "ops", reason: "too big" }))).toBe(
      "#10 2024-01-12 approval rejected: round r1, by ops: too big"
    )
    expect(Watch.line(ev(11, "RunCompleted", { metrics, checksum: "0123456789abcdef" }))).toBe(
      "#11 2024-01-13 completed: return +12.34%, Sharpe 1.50, max drawdown 5.00%, 3 trades, checksum 0123456789ab…"
    )
    expect(Watch.line(ev(12, "RunFailed", { reason: "boom" }))).toBe("#12 2024-01-14 failed: boom")
    expect(Watch.line(at(13, snapshot(1, 1, [])))).toBeUndefined()
    expect(Watch.line(ev(14, "OpinionGiven", { opinion: {} }))).toBeUndefined()
    expect(Watch.line(ev(15, "AgentLifecycle", { event: { _tag: "ActorStarted", actor: "/user/run" } }))).toBeUndefined()
    expect(Watch.line(ev(16, "AgentLifecycle", { event: { _tag: "ActorCrashed", actor: "/user/run/risk", cause: "boom\n  at x" } }))).toBe(
      "#16 2024-01-18 agent /user/run/risk crashed: boom"
    )
  })
})

describe("the frame a terminal shows", () => {
  it("the account, positions, decisions, verdicts and pending approvals, each line within the width", () => {
    const model = [
      ev(1, "RunStarted", { mode: "paper", symbols: ["AAA"], strategy: "str_1", strategyVersion: 1, seed: "0" }),
      at(2, snapshot(100_000_000_000, 100_000_000_000, [])),
      decision(3, "AAA", "long"),
      verdict(4, "AAA", "needs_approval", 100, ["order notional is 20% of equity, above the approval threshold of 1%"]),
      ev(5, "ApprovalRequested", { round: "AAA@3", intent: intent("AAA@3", "AAA", "buy", 100), quantity: 100, reasons: ["notional"], expiresAt: T0 + 5 * DAY + 30_000 }),
      at(6, snapshot(99_000_000_000, 110_000_000_000, [{ symbol: "AAA", quantity: 100 }]))
    ].reduce(Watch.step, Watch.initial("run_1", Watch.KEEP, 100_000_000_000 as Money))
    const lines = Watch.frame(model, 80)
    const text = lines.join("\n")
    expect(lines[0]).toBe("run run_1 (paper)  running  event #6  2024-01-08")
    expect(text).toContain("equity 110,000.00  +10.00%  cash 99,000.00")
    expect(text).toMatch(/ {2}AAA\s+100\s+10\.00\s+11\.00\s+\+100\.00/)
    expect(text).toContain("last decision\n  #3  2024-01-05  AAA  long  0.50")
    expect(text).toContain("approvals pending (swarm approvals approve|reject run_1 <round>)")
    // A paper run's approval expires in wall-clock time: its event's bar time plus the timeout is not when.
    expect(text).toContain("  AAA@3  AAA  buy 100  expires 30s after it was asked  notional")
    expect(text).not.toContain("2024-01-07 00:00:30Z")
    // The server's list gives the real expiry.
    const wall = Date.UTC(2025, 5, 1, 12, 0, 30)
    expect(Watch.frame(Watch.withExpiries(model, new Map([["AAA@3", wall]])), 80).join("\n")).toContain("  AAA@3  AAA  buy 100  expires 2025-06-01 12:00:30Z  notional")
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80)
    const narrow = Watch.frame(model, 40)
    expect(narrow.length).toBe(lines.length)
    for (const line of narrow) expect(line.length).toBeLessThanOrEqual(40)
    expect(narrow.some((line) => line.endsWith("…"))).toBe(true)
    expect(Watch.frame(Watch.initial("run_2")).join("\n")).toContain("approvals: none pending\n\npositions: none\n\ndecisions: none yet\nverdicts: none yet")
  })
})

describe("an approval's expiry", () => {
  const requested = ev(5, "ApprovalRequested", {
    round: "AAA@3",
    intent: intent("AAA@3", "AAA", "buy", 100),
    quantity: 100,
    reasons: ["notional"],
    expiresAt: T0 + 5 * DAY + 30_000
  })
  it("a backtest's is on the run's clock; a paper run's is the timeout after it was asked, or the wall-clock time the server gives", () => {
    expect(Watch.line(requested, { mode: "backtest" })).toBe("#5 2024-01-07 approval needed: round AAA@3: AAA buy 100 (notional), expires 2024-01-07 00:00:30Z")
    expect(Watch.line(requested, { mode: "paper" })).toBe("#5 2024-01-07 approval needed: round AAA@3: AAA buy 100 (notional), expires 30s after it was asked")
    expect(Watch.line(requested, { mode: "paper", expiry: { clock: "wall", at: Date.UTC(2025, 5, 1, 12, 0, 30, 250) } })).toBe(
      "#5 2024-01-07 approval needed: round AAA@3: AAA buy 100 (notional), expires 2025-06-01 12:00:30Z"
    )
    const backtest = Watch.step({ ...Watch.initial("run_1"), mode: "backtest" }, requested)
    expect(Watch.frame(backtest).join("\n")).toContain("expires 2024-01-07 00:00:30Z")
  })
})

describe("a frame on a short terminal", () => {
  it("keeps the header, the account and the pending approvals, and says what it cut", () => {
    const events = [
      ev(1, "RunStarted", { mode: "backtest", symbols: ["AAA", "BBB"], strategy: "str_1", strategyVersion: 1, seed: "0" }),
      at(2, snapshot(90_000_000_000, 100_000_000_000, [{ symbol: "AAA", quantity: 10 }, { symbol: "BBB", quantity: 5 }])),
      ...[3, 4, 5, 6, 7, 8].flatMap((i) => [decision(i * 2, "AAA", "long"), verdict(i * 2 + 1, "AAA", "approved", 100)]),
      ev(20, "ApprovalRequested", { round: "r1", intent: intent("r1", "AAA", "buy", 50), quantity: 50, reasons: ["big"], expiresAt: T0 }),
      ev(21, "ApprovalRequested", { round: "r2", intent: intent("r2", "BBB", "sell", 5), quantity: 5, reasons: ["big"], expiresAt: T0 })
    ]
    const model = events.reduce(Watch.step, Watch.initial("run_1"))
    const whole = Watch.frame(model, 39)
    const short = Watch.frame(model, 39, 14)
    expect(whole.length).toBeGreaterThan(14)
    expect(short).toHaveLength(14)
    const text = short.join("\n")
    expect(short[0]).toMatch(/^run run_1 \(backtest\)  running/)
    expect(text).toContain("  r1  AAA  buy 50")
    expect(text).toContain("  r2  BBB  sell 5")
    expect(short[13]!.startsWith(`… ${whole.length - 13} more lines`)).toBe(true)
    for (const line of short) expect(line.length).toBeLessThanOrEqual(39)
    expect(Watch.frame(model, 200, 14)[13]).toBe(`… ${whole.length - 13} more lines: a taller terminal shows them`)
    // What fits is not cut, and says nothing of a cut.
    expect(Watch.frame(model, 39, whole.length)).toEqual(whole)
  })
})

describe("what no event says", () => {
  it("paused and resumed from the server; stopped, its pending approvals cancelled; an ended view keeps its end", () => {
    const requested = ev(2, "ApprovalRequested", { round: "r1", intent: intent("r1", "AAA", "buy", 50), quantity: 50, reasons: ["big"], expiresAt: T0 })
    const running = fold([decision(1, "AAA", "long"), requested])
    const paused = Watch.withStatus(running, "paused")
    expect(Watch.frame(paused)[0]).toMatch(/^run run_1  paused  event #2/)
    expect(Watch.withStatus(paused, "running").status).toBe("running")
    // Who paused it and when, from the control log runs.get sends (an older server's: just paused).
    const control = {
      count: 3,
      last: [
        { action: "pause" as const, by: { id: "u1", name: "bob" }, at: new Date(Date.UTC(2026, 11, 6, 3, 0, 0)) },
        { action: "resume" as const, by: { id: "u1", name: "bob" }, at: new Date(Date.UTC(2026, 11, 6, 3, 5, 0)) },
        { action: "pause" as const, by: { id: "u2", name: "alice" }, at: new Date(Date.UTC(2026, 11, 6, 3, 12, 4)) }
      ]
    }
    const pausedBy = Watch.withStatus(running, "paused", undefined, control)
    expect(Watch.frame(pausedBy)[0]).toMatch(/^run run_1  paused by alice at 2026-12-06 03:12:04Z  event #2/)
    expect(Watch.lastBy(control, "resume")).toBe("bob at 2026-12-06 03:05:00Z")
    expect(Watch.withStatus(pausedBy, "running").pausedBy).toBeUndefined()
    const stopped = Watch.withStatus(paused, "stopped")
    expect(Watch.ended(stopped)).toBe(true)
    const text = Watch.frame(stopped).join("\n")
    expect(text).toMatch(/^run run_1  stopped  event #2/)
    expect(text).toContain("approvals: none pending (1 cancelled: the run was stopped before anyone answered)")
    expect(text).not.toContain("  r1  ")
    const completed = Watch.step(running, ev(3, "RunCompleted", { metrics, checksum: "abc" }))
    expect(Watch.withStatus(completed, "paused")).toBe(completed)
  })
})
