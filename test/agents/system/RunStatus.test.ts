/**
 * The `run_status` tool's pure core (agents/system/RunStatus.ts): the view of a run's row and
 * latest values, and the sentences an operator reads without a model.
 */
import { describe, expect, it } from "vitest"
import type { LatestValues, Position } from "../../../schemas/Portfolio.js"
import type { StateTransition } from "../../../schemas/Risk.js"
import { describeRunStatus, runStatusView } from "../../../agents/system/RunStatus.js"
import * as Format from "../../../agents/system/internal/Format.js"

const M = 1_000_000
const DAY = Date.UTC(2024, 2, 1)

const position = (symbol: string, quantity: number, averagePrice: number, markPrice: number): Position => ({
  symbol: symbol as Position["symbol"],
  quantity: quantity as Position["quantity"],
  averagePrice,
  realizedPnl: 0 as Position["realizedPnl"],
  markPrice,
  marketValue: Math.round(quantity * markPrice * M) as Position["marketValue"],
  unrealizedPnl: Math.round(quantity * (markPrice - averagePrice) * M) as Position["unrealizedPnl"]
})

const latest = (positions: ReadonlyArray<Position>, cash = 90_000 * M): LatestValues => {
  const value = positions.reduce((sum, p) => sum + p.marketValue, 0)
  return {
    seq: 1234,
    at: DAY,
    portfolio: {
      ts: DAY as never,
      cash: cash as never,
      equity: (cash + value) as never,
      grossExposure: positions.reduce((sum, p) => sum + Math.abs(p.marketValue), 0) as never,
      netExposure: value as never,
      realizedPnl: (150 * M) as never,
      unrealizedPnl: positions.reduce((sum, p) => sum + p.unrealizedPnl, 0) as never,
      positions: [...positions, position("FLAT", 0, 0, 10)]
    },
    quotes: {}
  }
}

const halt: StateTransition = {
  from: "active",
  to: "halted",
  cause: "operator",
  at: (DAY - 3_600_000) as StateTransition["at"],
  reason: "news pending",
  actor: "alice"
}

describe("run_status", () => {
  it("a live run halted by an operator: who, when and why; its book and open positions, largest first", () => {
    const view = runStatusView({
      status: "running",
      mode: "paper",
      failure: null,
      tradingState: "halted",
      lastChange: halt,
      initialCash: 100_000 * M,
      latest: latest([position("ACME", 10, 40, 42), position("GLOBEX", -100, 20, 19.5)])
    })
    expect(view.positions.map((p) => [p.symbol, p.side, p.quantity])).toEqual([["GLOBEX", "short", 100], ["ACME", "long", 10]])
    expect(view.asOf).toEqual({ ts: DAY, seq: 1234 })
    expect(describeRunStatus(view)).toBe(
      "The run is running (paper), trading halted. " +
        "Its trading is halted: operator alice moved it from active to halted at 2024-02-29 23:00 UTC (\"news pending\"). " +
        "As of the bar of 2024-03-01 00:00 UTC: equity 88,470.00, -11,530.00 (-11.5%) since its start; cash 90,000.00; " +
        "realized P&L +150.00, unrealized +70.00; gross exposure 2,370.00. " +
        "2 open positions: GLOBEX short 100 at 20 (mark 19.5, value -1,950.00, unrealized +50.00); " +
        "ACME long 10 at 40 (mark 42, value 420.00, unrealized +20.00)."
    )
  })

  it("money reads to the cent, as `runs show` prints it: equity, cash and P&L of an account in micros", () => {
    const view = runStatusView({
      status: "running",
      mode: "paper",
      failure: null,
      tradingState: "active",
      lastChange: null,
      initialCash: 250_000 * M,
      latest: latest([position("ACME", 604, 41.10054, 41.234567)], 224_441_142_066)
    })
    const text = describeRunStatus(view)
    expect(text).toContain("equity 249,346.82, -653.18 (-0.3%) since its start; cash 224,441.14; realized P&L +150.00, unrealized +80.95")
    expect(text).toContain("ACME long 604 at 41.10054 (mark 41.234567, value 24,905.68, unrealized +80.95)")
    // Half to even, as Money.format; less than half a cent of profit carries no sign.
    expect([Format.money(12_412_363), Format.money(5_000), Format.money(15_000), Format.money(-4_999)]).toEqual(["12.41", "0.00", "0.02", "0.00"])
    expect([Format.pnl(4_999), Format.pnl(5_001), Format.pnl(-1_234_567_890)]).toEqual(["0.00", "+0.01", "-1,234.57"])
    expect(Format.exactMoney(252_220_690_084)).toBe("252,220.690084")
  })

  it("one symbol's position, asked for in any case; a symbol held by none says so", () => {
    const input = {
      status: "running",
      mode: "paper",
      failure: null,
      tradingState: "active",
      lastChange: halt,
      initialCash: 100_000 * M,
      latest: latest([position("ACME", 10, 40, 42), position("GLOBEX", -100, 20, 19.5)])
    }
    const acme = runStatusView({ ...input, symbol: "acme" })
    expect(acme.positions.map((p) => p.symbol)).toEqual(["ACME"])
    // Active: no change is said (the one given is not what put it there).
    expect(acme.lastChange).toBeNull()
    expect(describeRunStatus(acme)).toMatch(/^The run is running \(paper\), trading active\. As of/)
    expect(describeRunStatus(runStatusView({ ...input, symbol: "INITECH" }))).toMatch(/ No open position in INITECH\.$/)
  })

  it("names the agents that crashed, those restarted most first, with their last cause: is anything down", () => {
    const view = runStatusView({
      status: "running",
      mode: "paper",
      failure: null,
      tradingState: "halted",
      lastChange: { ...halt, cause: "system", actor: null, reason: "the risk officer is down: nothing executes until it is back" },
      initialCash: null,
      latest: undefined,
      agentRestarts: [
        { agent: "risk", actor: "/user/run/risk", type: null, restarts: 3, crashes: 4, lastCause: "Error: boom", lastCrashSeq: 90 },
        { agent: "analyst-2", actor: "/user/run/analysts/analyst-2", type: "rsi_reversion", restarts: 1, crashes: 1, lastCause: null, lastCrashSeq: 12 },
        { agent: "ledger", actor: "/user/run/ledger", type: null, restarts: 0, crashes: 0, lastCause: null, lastCrashSeq: null }
      ]
    })
    expect(view.crashed.map((a) => a.agent)).toEqual(["risk", "analyst-2 (rsi_reversion)"])
    expect(describeRunStatus(view)).toBe(
      "The run is running (paper), trading halted. " +
        "Its trading is halted: the system moved it from active to halted at 2024-02-29 23:00 UTC (\"the risk officer is down: nothing executes until it is back\"). " +
        "Agents that crashed: risk 4 times, restarted 3 times, last \"Error: boom\"; analyst-2 (rsi_reversion) 1 time, restarted 1 time. " +
        "It has no fill yet: its book is its starting cash."
    )
  })

  it("no fill yet: its book is its starting cash; a run that ended says so, a failed one why", () => {
    const none = runStatusView({ status: "running", mode: "paper", failure: null, tradingState: "active", lastChange: null, initialCash: 250_000 * M, latest: undefined })
    expect(none.book).toBeNull()
    expect(describeRunStatus(none)).toBe("The run is running (paper), trading active. It has no fill yet: its book is its starting cash (250,000.00).")
    const failed = runStatusView({ status: "failed", mode: "backtest", failure: "its data file changed", tradingState: null, lastChange: null, initialCash: null, latest: undefined })
    expect(describeRunStatus(failed)).toBe("The run is failed (backtest): its data file changed. It has no fill yet in its whole run: its book is its starting cash.")
    const ended = runStatusView({
      status: "completed",
      mode: "backtest",
      failure: null,
      tradingState: "halted",
      lastChange: { ...halt, cause: "drawdown_halt", actor: null, reason: "drawdown 26% past 25%" },
      initialCash: 100_000 * M,
      latest: latest([])
    })
    expect(describeRunStatus(ended)).toContain("Its trading is halted: the maximum drawdown halt moved it from active to halted")
    expect(describeRunStatus(ended)).toContain("At its end, as of the bar of 2024-03-01 00:00 UTC: equity 90,000.00")
    expect(describeRunStatus(ended)).toMatch(/ No open position\.$/)
  })

  it("says what its LLM agents used of their model and budget, and that they abstain once it is spent", () => {
    const llm = {
      backend: "ollama",
      model: "llama3.2:3b",
      description: "Ollama at http://127.0.0.1:11434",
      calls: 2_170,
      cacheHits: 1_500,
      refused: 12,
      failed: 3,
      tokensIn: 90_000,
      tokensOut: 10_000,
      cost: 0,
      budget: { tokens: 100_000, maxTokens: 100_000, cost: 0, maxCost: null, exhausted: true },
      agents: []
    }
    const base = { status: "running", mode: "paper", failure: null, tradingState: "active", lastChange: null, initialCash: 100_000 * M } as const
    const text = describeRunStatus(runStatusView({ ...base, latest: latest([]), llm }))
    expect(text).toMatch(
      /No open position\. Its LLM agents \(ollama llama3\.2:3b: Ollama at http:\/\/127\.0\.0\.1:11434\) made 2,170 model calls \(1,500 answered from the cache, 3 failed \(the agent abstained\) and 12 refused by the budget\), using 100,000 tokens of the 100,000 its budget allows \(100%\)\. Its budget is spent: its LLM agents abstain from now on, and the consensus goes on without them\.$/
    )
    const priced = { ...llm, refused: 0, cacheHits: 0, failed: 0, calls: 1, budget: { tokens: 1_200, maxTokens: 1_000_000, cost: 0.0123, maxCost: 5, exhausted: false } }
    expect(describeRunStatus(runStatusView({ ...base, latest: undefined, llm: priced }))).toMatch(
      /starting cash \(100,000\.00\)\. Its LLM agents \(ollama llama3\.2:3b: .*\) made 1 model call, using 1,200 tokens of the 1,000,000 its budget allows \(0\.1%\), cost 0\.0123 of 5\.$/
    )
    // One symbol asked about: its position, not the run's model.
    expect(describeRunStatus(runStatusView({ ...base, latest: latest([]), llm, symbol: "ACME" }))).not.toContain("LLM")
  })

  it("counts what the run has done so far: decisions, verdicts by outcome, orders, fills and approvals pending", () => {
    const activity = { decisions: 144, approved: 120, reduced: 3, rejected: 21, orders: 123, fills: 1, pendingApprovals: 2 }
    const live = runStatusView({
      status: "running",
      mode: "paper",
      failure: null,
      tradingState: "active",
      lastChange: null,
      initialCash: 100_000 * M,
      latest: latest([position("ACME", 10, 40, 42)]),
      activity
    })
    expect(live.activity).toEqual(activity)
    expect(describeRunStatus(live)).toContain(
      "So far: 144 decisions; the risk officer approved 120 intents, reduced 3 and rejected 21; 123 orders placed, 1 fill; " +
        "2 approvals pending (swarm approvals list). 1 open position: ACME"
    )
    const ended = runStatusView({
      status: "completed",
      mode: "backtest",
      failure: null,
      tradingState: "active",
      lastChange: null,
      initialCash: 100_000 * M,
      latest: undefined,
      activity: { decisions: 3, approved: 0, reduced: 0, rejected: 3, orders: 0, fills: 0, pendingApprovals: 0 },
      symbol: "ACME"
    })
    expect(describeRunStatus(ended)).toBe(
      "The run is completed (backtest), trading active. In all on ACME: 3 decisions; the risk officer approved 0 intents, reduced 0 " +
        "and rejected 3; 0 orders placed, 0 fills. It has no fill yet in its whole run: its book is its starting cash (100,000.00)."
    )
    // Nothing decided yet: no count to give.
    const quiet = runStatusView({
      status: "running",
      mode: "paper",
      failure: null,
      tradingState: "active",
      lastChange: null,
      initialCash: null,
      latest: undefined,
      activity: { ...activity, decisions: 0 }
    })
    expect(describeRunStatus(quiet)).not.toContain("So far")
  })
})
