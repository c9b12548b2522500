/** What `swarm runs show` prints of a run a server reports: here, where it stands now. */
import { describe, expect, it } from "@effect/vitest"
import { Option, Schema } from "effect"
import { parse } from "yaml"
import type { PortfolioSnapshot } from "../../schemas/Portfolio.js"
import type { RunInfo } from "../../schemas/Rpc.js"
import { Rule } from "../../schemas/Rule.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as RemoteView from "../../src/cli/RemoteView.js"
import * as RunsView from "../../src/cli/RunsView.js"
import type { RunReport } from "../../schemas/Rpc.js"

const position = (symbol: string, quantity: number) => ({
  symbol,
  quantity,
  averagePrice: quantity === 0 ? 0 : 100,
  realizedPnl: 0,
  markPrice: 100,
  marketValue: quantity * 100_000_000,
  unrealizedPnl: 0
})

const run = (positions: ReadonlyArray<ReturnType<typeof position>>, changes: Partial<RunInfo> = {}): RunInfo =>
  ({
    id: "bt-1",
    ref: "SMA crossover#1",
    strategy: "SMA crossover",
    strategyVersion: 1,
    number: 1,
    mode: "backtest",
    status: "completed",
    failure: null,
    metrics: null,
    events: 10,
    checksum: null,
    startedAt: new Date(0),
    finishedAt: new Date(0),
    latest: {
      seq: 9,
      at: 0,
      source: "database",
      quotes: {},
      portfolio: {
        ts: 0,
        cash: 0,
        equity: 0,
        grossExposure: 0,
        netExposure: 0,
        realizedPnl: 0,
        unrealizedPnl: 0,
        positions
      } as unknown as PortfolioSnapshot
    },
    ...changes
  }) as RunInfo

const latest = (source: "cache" | "database", seq: number, equity: number, cash: number) => ({
  seq,
  at: Date.UTC(2023, 10, 27),
  source,
  quotes: { AAA: { price: 101.5, ts: Date.UTC(2023, 10, 27) } },
  portfolio: {
    ts: Date.UTC(2023, 10, 27),
    cash,
    equity,
    grossExposure: 0,
    netExposure: 0,
    realizedPnl: 0,
    unrealizedPnl: 0,
    positions: [position("AAA", 10)]
  } as unknown as PortfolioSnapshot
}) as unknown as RunInfo["latest"]

const metrics = {
  initialCash: 100_000_000_000,
  finalEquity: 126_087_070_000,
  totalReturn: 0.26087,
  cagr: 0.1,
  annualVolatility: null,
  sharpe: 1,
  sortino: 1,
  calmar: 1,
  maxDrawdown: 0,
  maxDrawdownPeakTs: null,
  maxDrawdownTroughTs: null,
  longestDrawdownBars: 0,
  winRate: null,
  profitFactor: null,
  averageWin: null,
  averageLoss: null,
  exposure: null,
  tradeCount: 0
} as unknown as RunInfo["metrics"]

describe("runs show: where the run stands", () => {
  it("counts the open positions of the book, not a flat one a server may still list", () => {
    expect(RemoteView.runShow(run([position("A", 10), position("B", 0), position("C", -5)]))).toMatch(/, 2 open positions,? at /)
    expect(RemoteView.runShow(run([position("A", 10)]))).toMatch(/, 1 open position,? at /)
  })
})

describe("runs show: a run that ended", () => {
  const ended = (status: string, changes: Partial<RunInfo>) =>
    RemoteView.runShow(run([], { status, latest: latest("cache", 212, 126_460_830_000, 25_000_000_000), ...changes }))

  it("a completed run says its final equity from its metrics, not the book after its last fill, and never live", () => {
    const text = ended("completed", { metrics })
    expect(text).not.toContain("live")
    expect(text).not.toMatch(/^now /m)
    expect(text).toContain("final     equity 126,087.07 (its metrics), cash 25,000.00, 1 open position since its last fill at 2023-11-27 (event 212)")
    expect(text).not.toContain("126,460.83")
  })

  it("a failed or stopped run labels the book after its last fill as what it is, and says why it has no metrics", () => {
    for (const status of ["failed", "stopped"]) {
      const text = ended(status, { metrics: null, events: null, checksum: null, failure: status === "failed" ? "the feed broke" : "stopped by ops" })
      expect(text).not.toContain("live")
      expect(text).toContain("last fill equity 126,460.83 marked at that fill's prices, cash 25,000.00, 1 open position, at 2023-11-27 (event 212): not its final equity")
      expect(text).toContain(`no metrics: the run ${status === "failed" ? "failed" : "was stopped"} before its end`)
      expect(text).not.toContain("once the run has ended")
      expect(text).toContain("events    — (counted only when a run completes)")
    }
  })

  it("a running run still says where it stands now, live from the cache", () => {
    const text = RemoteView.runShow(run([], { status: "running", metrics: null, events: null, finishedAt: null, latest: latest("cache", 32, 101_000_000_000, 90_000_000_000) }))
    expect(text).toContain("now       equity 101,000.00, cash 90,000.00, 1 open position at 2023-11-27 (event 32, live)")
    expect(text).toContain("metrics: once the run has ended (swarm runs watch follows it)")
    expect(text).toContain("events    — (still running)")
  })

  it("a running run's events are those recorded so far, said so; an ended run's are its count", () => {
    expect(RemoteView.runShow(run([], { status: "running", metrics: null, events: 1_234, finishedAt: null }))).toContain("events    1,234 so far\n")
    expect(RemoteView.runShow(run([], { status: "paused", metrics: null, events: 12, finishedAt: null }))).toContain("events    12 so far\n")
    expect(ended("stopped", { metrics: null, events: 12, failure: "stopped by ops" })).toContain("events    12\n")
  })
})

describe("runs show: a run the server cannot resume", () => {
  const why = `its strategy's agents[0].type: unknown agent type "gone"; this build cannot re-execute it`
  const said = [
    `status    running\n          not resumable by this server: ${why}\n`,
    "          (a server that can resume it does, or runs it already; if none does, `swarm runs stop bt-1` ends it)\n"
  ].join("")

  it("says why under its status, and what ends it, from runs.report and from an older server's runs.get", () => {
    const report: RunReport = {
      id: "bt-1",
      ref: "SMA crossover#1",
      strategy: "SMA crossover",
      strategyId: "st-1",
      strategyVersion: 1,
      number: 1,
      owner: "alice",
      mode: "paper",
      status: "running",
      seed: "0",
      eventDetail: "decisions",
      dataSource: { kind: "synthetic", seed: 1, bars: 10, symbols: ["AAA"] },
      dataFingerprint: "f",
      replayOf: null,
      faults: false,
      failure: null,
      metrics: null,
      counts: null,
      tradingState: null,
      from: null,
      to: null,
      startedAt: new Date(0),
      finishedAt: null,
      checksum: null,
      chain: null,
      equity: null,
      trades: { count: 0, first: [], last: [] },
      control: { count: 0, last: [] },
      notResumable: why
    }
    expect(RunsView.renderShow(RunsView.shownOf(report))).toContain(said)
    expect(RunsView.renderShow(RunsView.shownOf({ ...report, notResumable: undefined }))).not.toContain("not resumable")
    expect(RemoteView.runShow(run([], { status: "running", events: null, finishedAt: null, notResumable: why }))).toContain(said)
    expect(RemoteView.runShow(run([], { status: "running", events: null, finishedAt: null }))).not.toContain("not resumable")
  })

  it("read from the local database (no server), an unfinished run is said not to be known either way", () => {
    const report = RunsView.shownOf({
      id: "bt-1", ref: "SMA crossover#1", strategy: "SMA crossover", strategyId: "st-1", strategyVersion: 1, number: 1, owner: "alice",
      mode: "paper", status: "running", seed: "0", eventDetail: "decisions", dataSource: { kind: "synthetic", seed: 1, bars: 10, symbols: ["AAA"] },
      dataFingerprint: "f", replayOf: null, faults: false, failure: null, metrics: null, counts: null, tradingState: null, from: null, to: null,
      startedAt: new Date(0), finishedAt: null, checksum: null, chain: null, equity: null, trades: { count: 0, first: [], last: [] }, control: { count: 0, last: [] }
    })
    const local = RunsView.renderShow({ ...report, local: true })
    expect(local).toContain(
      "status    running\n          (read from the database, which cannot tell whether a server runs it or can resume it: a server's swarm runs show says)\n"
    )
    expect(local).not.toContain("not resumable")
    // A backtest: `swarm resume` goes on with it here.
    expect(RunsView.renderShow({ ...report, local: true, run: { ...report.run, mode: "backtest" } }))
      .toContain("status    running\n          (read from the database, which cannot tell whether a process runs it: swarm resume bt-1 goes on with it if none does)\n")
    // From a server, which knows: not said.
    expect(RunsView.renderShow(report)).not.toContain("read from the database")
    // A run that ended: nothing to know.
    expect(RunsView.renderShow({ ...report, local: true, run: { ...report.run, status: "completed", finishedAt: new Date(0) } })).not.toContain("read from the database")
  })

  it("a run halted says since when, by whom or what, and why, on its trading line and in --json", () => {
    const base = {
      id: "bt-1", ref: "SMA crossover#1", strategy: "SMA crossover", strategyId: "st-1", strategyVersion: 1, number: 1, owner: "alice",
      mode: "paper", status: "running", seed: "0", eventDetail: "decisions", dataSource: { kind: "synthetic", seed: 1, bars: 10, symbols: ["AAA"] },
      dataFingerprint: "f", replayOf: null, faults: false, failure: null, metrics: null, counts: null, tradingState: "halted", from: null, to: null,
      startedAt: new Date(0), finishedAt: null, checksum: null, chain: null, equity: null, trades: { count: 0, first: [], last: [] }, control: { count: 0, last: [] }
    }
    const change = { from: "active", to: "halted", cause: "operator", at: Date.UTC(2022, 4, 6), reason: "news pending", actor: "alice" } as const
    const byOperator = RunsView.shownOf({ ...base, tradingChange: change as never })
    expect(RunsView.renderShow(byOperator)).toContain("\ntrading   halted since the bar of 2022-05-06, by operator alice: news pending\n")
    expect(JSON.parse(RunsView.showJson(byOperator)).tradingChange).toEqual({ ...change, at: "2022-05-06T00:00:00.000Z" })
    const byBreaker = RunsView.shownOf({ ...base, tradingChange: { ...change, cause: "drawdown_halt", actor: null, reason: "drawdown 26% past 25%" } as never })
    expect(RunsView.renderShow(byBreaker)).toContain("\ntrading   halted since the bar of 2022-05-06, by drawdown halt: drawdown 26% past 25%\n")
    // A server older than it: the state alone.
    expect(RunsView.renderShow(RunsView.shownOf(base))).toContain("\ntrading   halted\n")
    expect(JSON.parse(RunsView.showJson(RunsView.shownOf(base))).tradingChange).toBeUndefined()
  })
})

describe("runs start, stop, pause, resume", () => {
  it("say how to follow a live run, unless it is followed already (runs start --watch)", () => {
    const live = run([], { status: "running", metrics: null, finishedAt: null })
    expect(RemoteView.runChanged("started", live)).toBe("started run bt-1 (SMA crossover#1, backtest): running\nfollow it: swarm runs watch bt-1\n")
    expect(RemoteView.runChanged("started", live, true)).toBe("started run bt-1 (SMA crossover#1, backtest): running\n")
  })

  it("say so when the run ended by itself before the stop or the pause took", () => {
    expect(RemoteView.runChanged("stopped", run([], { status: "stopped", failure: "stopped by alice" }))).toBe(
      "stopped run bt-1 (SMA crossover#1, backtest): stopped: stopped by alice\n"
    )
    expect(RemoteView.runChanged("stopped", run([], { status: "completed", failure: null }))).toBe(
      "run bt-1 (SMA crossover#1, backtest) completed before it could be stopped\n"
    )
    expect(RemoteView.runChanged("paused", run([], { status: "failed", failure: "the database failed" }))).toBe(
      "run bt-1 (SMA crossover#1, backtest) failed before it could be paused: the database failed\n"
    )
  })
})

describe("runs compare", () => {
  const a = run([], { id: "run_a", ref: "S#1" })
  const paper = run([], { id: "run_b", ref: "S#2", number: 2, mode: "paper", status: "running", finishedAt: null })
  const at = { ts: Date.UTC(2023, 6, 11), symbol: "INITECH" }
  const decisions = (text: string) => text.split("\n").filter((line) => line.startsWith("decisions") || line.startsWith("first differing"))

  it("a profit factor with wins and no loss is shown unbounded, as the leaderboard shows it", () => {
    const metrics = { ...a.metrics!, profitFactor: null, winningTrades: 3, losingTrades: 0 }
    const row = RemoteView.compareTable({ a: { ...a, metrics }, b: a, firstDifference: null }).split("\n").find((line) => line.includes("profit factor"))
    expect(row).toContain("∞ (no losing trade)")
  })

  it("a Sortino with no day below the target and a Calmar with no drawdown are shown unbounded; null for want of data, a dash", () => {
    const rowOf = (text: string, label: string) => text.split("\n").find((line) => line.includes(` ${label} `))
    const best = { ...a.metrics!, sortino: null, annualVolatility: 0.1, calmar: null, maxDrawdown: 0, cagr: 0.2 }
    const missing = { ...a.metrics!, sortino: null, annualVolatility: null, calmar: null, maxDrawdown: 0, cagr: null }
    const text = RemoteView.compareTable({ a: { ...a, metrics: best }, b: { ...a, metrics: missing }, firstDifference: null })
    expect(rowOf(text, "Sortino")).toMatch(/│\s+∞ \(no day below the target\) │\s+— │\s+— │/)
    expect(rowOf(text, "Calmar")).toMatch(/│\s+∞ \(no drawdown\) │\s+— │\s+— │/)
  })

  it("a run still going, alike so far, has not got there yet: no differing decision", () => {
    const text = RemoteView.compareTable({ a, b: paper, firstDifference: { ...at, matched: 40, ended: "b" } })
    expect(decisions(text)).toEqual(["decisions: the same so far (40 alike); b (S#2) has no decision yet from 2023-07-11 INITECH on: it is still running"])
  })

  it("a run that ended earlier, alike until then, is said to have ended", () => {
    const short = { ...paper, status: "completed" as const, finishedAt: new Date(0) }
    const text = RemoteView.compareTable({ a: short, b: a, firstDifference: { ...at, matched: 3, ended: "a" } })
    expect(decisions(text)).toEqual(["decisions: the same until a (S#2) ended (3 alike); b (S#1) decided on from 2023-07-11 INITECH"])
    expect(JSON.parse(RemoteView.compareJson({ a: short, b: a, firstDifference: { ...at, matched: 3, ended: "a" } })).firstDifference).toEqual({
      ts: "2023-07-11T00:00:00.000Z",
      symbol: "INITECH",
      matched: 3,
      ended: "a"
    })
  })

  it("a server's answer is the local comparison only when it sends all that is made of: records, event detail, decisions", () => {
    const record = { strategyId: "str_1", owner: "usr_1", seed: "0", from: 0, to: 1, counts: null, tradingState: "active" }
    const full = {
      a: { ...a, record },
      b: { ...paper, record },
      firstDifference: { ...at, matched: 2, a: { round: "INITECH@1", seq: 7, action: "long", confidence: 1 }, b: null },
      eventDetail: { a: "rounds", b: "decisions" }
    }
    const compared = RunsView.comparedOf(full)!
    expect([compared.a.eventDetail, compared.b.eventDetail, compared.a.id, compared.b.seed]).toEqual(["rounds", "decisions", "run_a", "0"])
    expect(compared.difference).toEqual(Option.some({ ...at, matched: 2, a: full.firstDifference.a, b: null, ended: null }))
    expect(RunsView.comparedOf({ ...full, firstDifference: null })?.difference._tag).toBe("None")
    // A server older than any of them: what it sent is printed, as before.
    const { eventDetail: _, ...noDetail } = full
    expect(RunsView.comparedOf(noDetail)).toBeUndefined()
    expect(RunsView.comparedOf({ ...full, a }), "no record").toBeUndefined()
    expect(RunsView.comparedOf({ ...full, firstDifference: { ...at, matched: 2 } }), "no decisions").toBeUndefined()
  })

  it("a difference of decisions, or an older server's answer (no ended), is the first differing decision", () => {
    expect(decisions(RemoteView.compareTable({ a, b: paper, firstDifference: { ...at, matched: 2 } }))).toEqual(["first differing decision: 2023-07-11 INITECH"])
    expect(decisions(RemoteView.compareTable({ a, b: paper, firstDifference: at }))).toEqual(["first differing decision: 2023-07-11 INITECH"])
  })
})

describe("strategies show", () => {
  const version = (approval: Record<string, unknown>) => ({
    id: "stg_1",
    name: "Flip",
    version: 2,
    strategy: Schema.decodeUnknownSync(Strategy)({ name: "Flip", symbols: ["AAPL"], agents: [{ type: "sma_crossover" }], risk: { approval } })
  })

  it("spells out the approval timeout a strategy leaves out as a comment, and the file reads back as the same strategy", () => {
    const shown = version({ policy: "pause", shorts: true })
    const yaml = RemoteView.strategyYaml(shown)
    expect(yaml).toContain("    # timeoutSeconds: 900 (the default while it is left out)\n")
    expect(Schema.decodeUnknownSync(Strategy)(parse(yaml))).toEqual(shown.strategy)
  })

  it("a timeout the strategy sets is its value, with no comment", () => {
    const shown = version({ policy: "pause", timeoutSeconds: 60 })
    const yaml = RemoteView.strategyYaml(shown)
    expect(yaml).toContain("    timeoutSeconds: 60\n")
    expect(yaml).not.toContain("# timeoutSeconds")
    expect(Schema.decodeUnknownSync(Strategy)(parse(yaml))).toEqual(shown.strategy)
  })
})

describe("runs list", () => {
  it("an admin's list of several users' runs has an owner column; one user's, none", () => {
    const mine = run([], { id: "run_a", ref: "S#1", owner: "alice" })
    const theirs = run([], { id: "run_b", ref: "S#1", owner: "bob" })
    const header = (text: string) => text.split("\n")[1]!
    expect(header(RemoteView.runsTable([mine, theirs], undefined))).toMatch(/│ run +│ owner +│ id +│/)
    const rows = RemoteView.runsTable([mine, theirs], undefined).split("\n").filter((line) => line.includes("S#1"))
    expect(rows.map((line) => line.split("│")[2]!.trim())).toEqual(["alice", "bob"])
    expect(header(RemoteView.runsTable([mine], undefined))).not.toContain("owner")
  })

  it("a run the server cannot resume is marked, the line under the table says what the mark means; --json has why", () => {
    const why = `the run's data cannot be read as it was: ENOENT`
    const stuck = run([], { id: "run_a", ref: "S#1", status: "running", events: null, finishedAt: null, notResumable: why })
    const fine = run([], { id: "run_b", ref: "S#2" })
    const text = RemoteView.runsTable([stuck, fine], "swarm runs list --before run_b")
    const status = (ref: string) => text.split("\n").find((line) => line.includes(ref))!.split("│")[3]!.trim()
    expect(status("S#1")).toBe(`running ${RemoteView.NOT_RESUMABLE_MARK}`)
    expect(status("S#2")).toBe("completed")
    expect(text).toMatch(
      /┘\n\(!\) not resumable by this server, which does not run it: swarm runs show run_a says why \(if no server runs it, swarm runs stop run_a ends it\)\nmore runs follow/
    )
    expect(RemoteView.runsTable([fine], undefined)).not.toContain("(!)")
    // Two marked: the line names no one run.
    expect(RemoteView.runsTable([stuck, { ...stuck, id: "run_c", ref: "S#3" }], undefined)).toContain("swarm runs show <run> says why")
    // The document, as the local database's of the same runs, with `notResumable` as runs.get has it.
    const record = { strategyId: "st-1", owner: "alice", seed: "0", from: null, to: null, counts: null, tradingState: null }
    const listed = JSON.parse(RemoteView.runsJson([{ ...stuck, record }, { ...fine, record }])) as Array<Record<string, unknown>>
    expect(listed.map((r) => r["notResumable"])).toEqual([why, undefined])
    // Older servers (no record): their answer as they sent it, which has it too.
    expect((JSON.parse(RemoteView.runsJson([stuck])) as Array<Record<string, unknown>>)[0]!["notResumable"]).toBe(why)
  })

  it("a live run that is not trading freely says so beside its status; an ended one, and a server older than it, its status alone", () => {
    const record = (tradingState: string | null) => ({ strategyId: "st-1", owner: "alice", seed: "0", from: null, to: null, counts: null, tradingState })
    const runs = [
      run([], { id: "run_a", ref: "S#1", status: "running", events: 7, finishedAt: null, record: record("halted") }),
      run([], { id: "run_b", ref: "S#2", status: "paused", events: 7, finishedAt: null, record: record("reducing") }),
      run([], { id: "run_c", ref: "S#3", status: "running", events: 7, finishedAt: null, record: record("active") }),
      run([], { id: "run_d", ref: "S#4", status: "completed", events: 7, record: record("halted") }),
      run([], { id: "run_e", ref: "S#5", status: "running", events: 7, finishedAt: null })
    ]
    const text = RemoteView.runsTable(runs, undefined)
    const status = (ref: string) => text.split("\n").find((line) => line.includes(ref))!.split("│")[3]!.trim()
    expect(["S#1", "S#2", "S#3", "S#4", "S#5"].map(status)).toEqual(["running, halted", "paused, reducing", "running", "completed", "running"])
  })

  it("a run waiting for a slot on the server is marked, the line under the table says what the mark means; --json has why", () => {
    const why = "its owner has 1 live run on this server, the most a user may have here (SWARM_MAX_LIVE_RUNS_PER_USER=1): it waits"
    const waits = run([], { id: "run_a", ref: "S#1", status: "running", events: 7, finishedAt: null, waiting: why })
    const going = run([], { id: "run_b", ref: "S#2", status: "running", events: 9, finishedAt: null })
    const text = RemoteView.runsTable([waits, going], undefined)
    const status = (ref: string) => text.split("\n").find((line) => line.includes(ref))!.split("│")[3]!.trim()
    expect(status("S#1")).toBe(`running ${RemoteView.WAITING_MARK}`)
    expect(status("S#2")).toBe("running")
    expect(text).toMatch(
      /┘\n\(waiting\) waits for a slot among its owner's live runs on the server, not failed: it goes on when one of them ends \(swarm runs show run_a says more; swarm runs stop run_a ends it\)\n$/
    )
    expect(RemoteView.runsTable([going], undefined)).not.toContain(RemoteView.WAITING_MARK)
    // Both marks, when the server says both.
    const both = RemoteView.runsTable([{ ...waits, notResumable: "its data changed" }], undefined)
    expect(both.split("\n").find((line) => line.includes("S#1"))!.split("│")[3]!.trim()).toBe(`running ${RemoteView.NOT_RESUMABLE_MARK} ${RemoteView.WAITING_MARK}`)
    // The document, as the local database's of the same runs, with `waiting` as runs.get has it.
    const record = { strategyId: "st-1", owner: "alice", seed: "0", from: null, to: null, counts: null, tradingState: null }
    const listed = JSON.parse(RemoteView.runsJson([{ ...waits, record }, { ...going, record }])) as Array<Record<string, unknown>>
    expect(listed.map((r) => r["waiting"])).toEqual([why, undefined])
  })

  it("a run stopped or failed before it completed: its figures up to where it stopped (upToStop), marked * and said so, as the local list", () => {
    const partial = { ...metrics!, totalReturn: -0.0123, sharpe: 0.5, maxDrawdown: 0.02, tradeCount: 2 }
    const stopped = run([], { id: "run_a", ref: "S#1", status: "stopped", upToStop: { _tag: "upTo", through: Date.UTC(2024, 0, 2), metrics: partial } })
    const unavailable = run([], { id: "run_b", ref: "S#2", status: "failed", upToStop: { _tag: "none", reason: "its data changed", trades: 3 } })
    const completed = run([], { id: "run_c", ref: "S#3", metrics })
    const text = RemoteView.runsTable([stopped, unavailable, completed], undefined)
    // return, Sharpe, max DD, trades
    const figures = (ref: string) => text.split("\n").find((line) => line.includes(ref))!.split("│").slice(5, 9).map((cell) => cell.trim())
    expect(figures("S#1")).toEqual(["-1.23%*", "0.50*", "2.00%*", "2*"])
    expect(figures("S#2")).toEqual(["—", "—", "—", "3"])
    expect(figures("S#3")).toEqual(["+26.09%", "1.00", "0.00%", "0"])
    expect(text).toMatch(/┘\n\* up to where the run stopped or failed: rebuilt from its data and fills \(swarm runs show has them all\)\n$/)
    // The same cells as the local database's list makes of them.
    expect(figures("S#1")).toEqual(RunsView.listedFigures(null, stopped.upToStop).cells)
    // None marked: no line under the table.
    expect(RemoteView.runsTable([unavailable, completed], undefined)).toMatch(/┘\n$/)
  })

  it("a list cut short ends with the command line of the next page; a whole one with the table", () => {
    const shown = run([], { id: "run_a", ref: "S#1" })
    expect(RemoteView.runsTable([shown], "swarm runs list --before run_a")).toMatch(/┘\nmore runs follow; the next page: swarm runs list --before run_a\n$/)
    expect(RemoteView.runsTable([shown], undefined)).toMatch(/┘\n$/)
  })
})

describe("rules list", () => {
  it("shows a rule stored before ids and names were checked with what a terminal would act on as its escape", () => {
    const rule = Schema.decodeUnknownSync(Rule)({ id: "evil\u001b]0;pwned\u0007", name: "N\u001b[31mRED\u202e", kind: "max_open_positions", params: { count: 1 } })
    const table = RemoteView.rulesTable([rule])
    expect(table).toContain("evil\\u001b]0;pwned\\u0007")
    expect(table).toContain("N\\u001b[31mRED\\u202e")
    expect(table).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/)
  })
})

describe("approvals list", () => {
  const held = (run: string, owner?: string) => ({
    run,
    ref: `Flip#${run.slice(-1)}`,
    round: `r-${run}`,
    symbol: "AAPL",
    side: "buy",
    quantity: 10,
    referencePrice: 101.5,
    reasons: ["notional above 5% of equity"],
    requestedAt: Date.UTC(2026, 0, 2, 9, 30),
    expiresAt: Date.UTC(2026, 0, 2, 9, 45),
    ...(owner === undefined ? {} : { owner })
  })
  /** The table's lines with a cell (the header, then the rows), as their cells. */
  const cells = (text: string) =>
    text.split("\n").filter((line) => line.startsWith("│")).map((line) => line.split("│").slice(1, -1).map((cell) => cell.trim()))
  const header = (text: string) => cells(text)[0]

  it("an admin's list of several users' runs says whose each is", () => {
    const text = RemoteView.approvalsTable([held("run_1", "alice"), held("run_2", "bob")])
    expect(header(text)).toEqual(["run", "owner", "id", "round", "order", "price", "asked", "expires", "reasons"])
    expect(cells(text).slice(1).map((row) => row.slice(0, 3))).toEqual([["Flip#1", "alice", "run_1"], ["Flip#2", "bob", "run_2"]])
  })

  it("one user's list, or a server's that does not say, has no owner column", () => {
    for (const list of [[held("run_1", "alice"), held("run_2", "alice")], [held("run_1"), held("run_2")]]) {
      expect(header(RemoteView.approvalsTable(list))).toEqual(["run", "id", "round", "order", "price", "asked", "expires", "reasons"])
    }
  })
})

describe("a server's run as --json prints it", () => {
  const record = { strategyId: "str_1", owner: "usr_1", seed: "0", from: null, to: null, counts: null, tradingState: null }

  it("with the rest of its record: the local database's document, and nothing of the RPC's own", () => {
    const info = run([], { status: "running", events: null, finishedAt: null, record })
    const document = JSON.parse(RemoteView.runJson(info))
    expect(Object.keys(document)).toEqual([
      "id", "ref", "strategy", "strategyId", "strategyVersion", "number", "owner", "mode", "status", "seed", "period",
      "metrics", "counts", "tradingState", "checksum", "failure", "startedAt", "finishedAt"
    ])
    expect(document).toMatchObject({ owner: "usr_1", strategyId: "str_1", period: null, finishedAt: null })
    expect(RemoteView.runLine(info)).toBe(`${JSON.stringify(document)}\n`)
    expect(JSON.parse(RemoteView.runsJson([info, info]))).toEqual([document, document])
  })

  it("from a server older than the record: its summary as it came", () => {
    const info = run([])
    const document = JSON.parse(RemoteView.runJson(info))
    expect(document).toMatchObject({ id: "bt-1", events: 10 })
    expect(document).not.toHaveProperty("seed")
    // One run without it is a list printed as the server sent it: one shape for the whole array.
    const listed = JSON.parse(RemoteView.runsJson([{ ...info, record }, info])) as Array<Record<string, unknown>>
    expect(listed.map((r) => "events" in r)).toEqual([true, true])
  })
})

describe("runs compare: the first differing decision", () => {
  it("names its round as runs events does, <symbol>@<bar time>, which chat's explain and swarm trace take", () => {
    const text = RunsView.decisionText({ round: "S04@1108598400000", seq: 1_234, action: "buy", confidence: 0.5 }, "decisions")
    expect(text).toBe("buy (confidence 0.50, round S04@2005-02-17, event 1234)")
    // A round not of that form is printed as it is.
    expect(RunsView.decisionText({ round: "manual-1", seq: 7, action: "sell", confidence: 1 }, "decisions")).toBe("sell (confidence 1.00, round manual-1, event 7)")
  })
})
