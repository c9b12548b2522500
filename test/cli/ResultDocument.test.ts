import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import * as EventLog from "../../src/cli/EventLog.js"
import * as ResultDocument from "../../src/cli/ResultDocument.js"
import * as Summary from "../../src/cli/Summary.js"
import type { Result } from "../../src/swarm/Backtest.js"
import { compute } from "../../src/trading/Metrics.js"
import type { RunId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import type { Trade } from "../../schemas/Trade.js"

const day = (d: number) => Date.UTC(2024, 0, d) as Timestamp
const money = (micros: number) => micros as Money

const trade = (over: Partial<Trade> = {}): Trade => ({
  symbol: "ACME" as Symbol,
  side: "long",
  quantity: 10,
  entryTs: day(2),
  exitTs: day(5),
  entryPrice: 100.5,
  exitPrice: 101.25,
  pnl: money(7_490_000),
  commission: money(10_000),
  ...over
})

const result = (over: Partial<Result> = {}): Result => {
  const trades = [trade(), trade({ symbol: "BETA" as Symbol, side: "short", pnl: money(-1_234_567), exitTs: day(8) })]
  return {
    runId: "bt-test" as RunId,
    status: "completed",
    metrics: compute({
      curve: [
        { ts: day(2), equity: money(100_000_000_000), exposed: true },
        { ts: day(5), equity: money(100_007_490_000), exposed: false },
        { ts: day(8), equity: money(100_006_255_433), exposed: false }
      ],
      trades,
      initialCash: money(100_000_000_000),
      config: { periodsPerYear: 252, riskFreeRate: 0 }
    }),
    trades,
    portfolio: {
      ts: day(8),
      cash: money(100_006_255_433),
      equity: money(100_006_255_433),
      grossExposure: money(0),
      netExposure: money(0),
      realizedPnl: money(6_255_433),
      unrealizedPnl: money(0),
      positions: [{
        symbol: "ACME" as Symbol,
        quantity: 0,
        averagePrice: 0,
        realizedPnl: money(7_490_000),
        markPrice: 101.25,
        marketValue: money(0),
        unrealizedPnl: money(0)
      }]
    },
    tradingState: "active",
    checksum: "ab".repeat(32),
    counts: { bars: 3, slices: 3, rounds: 3, decisions: 2, orders: 4, fills: 4, rejected: 0, restarts: 0, events: 20 },
    agentRestarts: [],
    abstentions: [],
    from: day(2),
    to: day(8),
    ...over
  }
}

describe("the result document", () => {
  it("money is an exact decimal string, times are ISO instants, and it decodes back to the run's values", () => {
    const document = ResultDocument.make(result(), { strategy: "S", seed: "7" })
    const json = JSON.parse(ResultDocument.toJson(document))
    expect(json.period).toEqual({ from: "2024-01-02T00:00:00.000Z", to: "2024-01-08T00:00:00.000Z" })
    expect(json.trades[1]).toEqual({
      symbol: "BETA",
      side: "short",
      quantity: 10,
      entry: "2024-01-02T00:00:00.000Z",
      exit: "2024-01-08T00:00:00.000Z",
      entryPrice: 100.5,
      exitPrice: 101.25,
      pnl: "-1.234567",
      commission: "0.01"
    })
    expect(json.metrics.initialCash).toBe("100000")
    expect(json.metrics.grossLoss).toBe("-1.234567")
    expect(json.positions[0].realizedPnl).toBe("7.49")
    expect("failure" in json).toBe(false)
    expect(Schema.decodeUnknownSync(ResultDocument.ResultDocument)(json)).toEqual(document)
  })

  it("a failed run says why", () => {
    const document = ResultDocument.make(result({ status: "failed", failure: "the run's supervisor gave up" }), { strategy: "S", seed: "0" })
    expect(JSON.parse(ResultDocument.toJson(document))).toMatchObject({ status: "failed", failure: "the run's supervisor gave up" })
  })

  it("gives average prices to 8 decimals, without floating-point noise, as trades.csv does", () => {
    const base = result()
    const noisy = { ...base.trades[0]!, entryPrice: 39.699839999999995, exitPrice: 41.100000000000001 }
    const document = ResultDocument.make(result({ trades: [noisy] }), { strategy: "S", seed: "0" })
    const [trade] = JSON.parse(ResultDocument.toJson(document)).trades
    expect([trade.entryPrice, trade.exitPrice]).toEqual([39.69984, 41.1])
    expect(ResultDocument.tradesCsv([noisy]).split("\n")[1]).toContain(",39.69984,41.1,")
  })

  it("says the trading state the run ended in, as the summary and the stored run do", () => {
    expect(JSON.parse(ResultDocument.toJson(ResultDocument.make(result(), { strategy: "S", seed: "0" }))).tradingState).toBe("active")
    const halted = ResultDocument.make(result({ tradingState: "halted" }), { strategy: "S", seed: "0" })
    expect(JSON.parse(ResultDocument.toJson(halted)).tradingState).toBe("halted")
    expect(Schema.decodeUnknownSync(ResultDocument.ResultDocument)(JSON.parse(ResultDocument.toJson(halted))).tradingState).toBe("halted")
  })

  it("a run with LLM agents names its model, what its agents used, and says when its budget ran out", () => {
    const calls = { calls: 12, cacheHits: 3, refused: 2, failed: 0, tokensIn: 41_000, tokensOut: 18_700, cost: 0 }
    const llm = {
      backend: "ollama" as const,
      model: "llama3.2:3b",
      description: "ollama at http://127.0.0.1:11434 (1 model: llama3.2:3b)",
      ...calls,
      budget: { tokens: 59_700, maxTokens: 60_000, cost: 0, maxCost: null, exhausted: true },
      agents: [{ agent: "llm_debate", backend: "ollama", model: "llama3.2:3b", ...calls }]
    }
    const spent = "run bt-test's LLM tokens budget is spent (59500 of 60000; the call needed 2100)"
    const document = ResultDocument.make(result({ llm: { ...llm, budgetSpent: spent } }), { strategy: "S", seed: "0" })
    expect(JSON.parse(ResultDocument.toJson(document)).llm).toEqual({ ...llm, budgetSpent: spent })
    expect(Schema.decodeUnknownSync(ResultDocument.ResultDocument)(JSON.parse(ResultDocument.toJson(document))).llm?.budgetSpent).toBe(spent)
    const context = { strategy: "S", strategyFile: "s.yaml", seed: "0", symbols: 2 }
    const text = Summary.render(result({ llm: { ...llm, budgetSpent: spent } }), context)
    expect(text).toContain(
      `llm       ollama llama3.2:3b: ${llm.description}\n` +
        `          12 model calls (3 from the cache, 2 refused by the budget), tokens 41,000 in, 18,700 out\n` +
        `          budget 59,700 of 60,000 tokens spent: exhausted, its LLM agents abstained from then on\n` +
        `          the first call refused: ${spent}\n`
    )
    // Without LLM agents, or with budget to spare, nothing or no budget line.
    expect(Summary.render(result(), context)).not.toContain("llm ")
    expect(Summary.render(result({ llm }), context)).not.toContain("the first call refused")
    expect(ResultDocument.make(result(), { strategy: "S", seed: "0" }).llm).toBeUndefined()
  })

  it("times must be ISO instants", () => {
    expect(Either.isLeft(Schema.decodeUnknownEither(ResultDocument.IsoTime)("2024-01-02"))).toBe(true)
    expect(Either.isLeft(Schema.decodeUnknownEither(ResultDocument.IsoTime)("yesterday"))).toBe(true)
    expect(Schema.decodeUnknownSync(ResultDocument.IsoTime)("2024-01-02T01:00:00+01:00")).toBe(day(2))
  })

  it("trades.csv: a header and one row per trade, in closing order", () => {
    expect(ResultDocument.tradesCsv(result().trades).split("\n")).toEqual([
      "symbol,side,quantity,entry,exit,entry_price,exit_price,pnl,commission",
      "ACME,long,10,2024-01-02T00:00:00.000Z,2024-01-05T00:00:00.000Z,100.5,101.25,7.49,0.01",
      "BETA,short,10,2024-01-02T00:00:00.000Z,2024-01-08T00:00:00.000Z,100.5,101.25,-1.234567,0.01",
      ""
    ])
  })
})

describe("the summary", () => {
  it("undefined figures are a dash, fractions are percentages, money is formatted from micros", () => {
    const metrics = compute({ curve: [], trades: [], initialCash: money(250_000_000_000), config: { periodsPerYear: 252, riskFreeRate: 0 } })
    const rows = new Map(Summary.metricRows(metrics))
    expect(rows.get("Sharpe")).toBe("—")
    expect(rows.get("win rate")).toBe("—")
    expect(rows.get("total return")).toBe("0.00% (250,000.00 → 250,000.00)")
    expect(rows.get("trades")).toBe("0")
    const some = new Map(Summary.metricRows(result().metrics))
    expect(some.get("win rate")).toBe("50.00% (1 won, 1 lost)")
    expect(some.get("avg win / loss")).toBe("7.49 / -1.23")
    expect(some.get("profit factor")).toMatch(/^\d+\.\d\d$/)
  })

  it("a profit factor with wins and no loss is unbounded, shown as the leaderboard shows it; with no trade, a dash", () => {
    const won = result()
    const metrics = { ...won.metrics, profitFactor: null, winningTrades: 2, losingTrades: 0 }
    expect(new Map(Summary.metricRows(metrics)).get("profit factor")).toBe("∞ (no losing trade)")
    expect(new Map(Summary.metricRows({ ...metrics, winningTrades: 0 })).get("profit factor")).toBe("—")
  })

  it("the bar count says the symbols and the bar times, not a product they do not make; one of each is singular", () => {
    const context = { strategy: "S", strategyFile: "s.yaml", seed: "0", symbols: 2 }
    const barsLine = (text: string) => text.split("\n").find((line) => line.startsWith("bars "))
    // Two symbols with gaps: 234 bars at 120 times, not 120 × 2.
    const gaps = result({ counts: { ...result().counts, bars: 234, slices: 120 } })
    expect(barsLine(Summary.render(gaps, context))).toBe("bars      234 (2 symbols, 120 bar times)")
    const one = result({ counts: { ...result().counts, bars: 1, slices: 1 } })
    expect(barsLine(Summary.render(one, { ...context, symbols: 1 }))).toBe("bars      1 (1 symbol, 1 bar time)")
    const many = result({ counts: { ...result().counts, bars: 1_500, slices: 500 } })
    expect(barsLine(Summary.render(many, { ...context, symbols: 3 }))).toBe("bars      1,500 (3 symbols, 500 bar times)")
  })

  it("a Sortino with no day below the target and a Calmar with no drawdown are unbounded, shown as such; null for want of data, a dash", () => {
    const metricsOf = (equities: ReadonlyArray<number>, options: { readonly riskFreeRate?: number; readonly sameDay?: boolean } = {}) =>
      new Map(Summary.metricRows(compute({
        curve: equities.map((equity, i) => ({ ts: (options.sameDay === true ? day(2) + i * 14_400_000 : day(2 + i)) as Timestamp, equity: money(equity * 1e6), exposed: true })),
        trades: [],
        initialCash: money(1_000_000_000),
        config: { periodsPerYear: 252, riskFreeRate: options.riskFreeRate ?? 0 }
      })))
    // Every day up, by different amounts: no downside, no drawdown, a positive CAGR.
    const rising = metricsOf([1_010, 1_030, 1_035, 1_060])
    expect([rising.get("Sortino"), rising.get("Calmar")]).toEqual(["∞ (no day below the target)", "∞ (no drawdown)"])
    // One bar: too few days for a Sortino, no time for a CAGR.
    const one = metricsOf([1_010])
    expect([one.get("Sortino"), one.get("Calmar")]).toEqual(["—", "—"])
    // One day of rising bars: a CAGR and no drawdown (unbounded), but one daily return (no Sortino).
    const oneDay = metricsOf([1_000, 1_005, 1_010], { sameDay: true })
    expect([oneDay.get("Sortino"), oneDay.get("Calmar")]).toEqual(["—", "∞ (no drawdown)"])
    // Flat: every day at the target and no gain, 0 / 0 both — not a best case.
    const flat = metricsOf([1_000, 1_000, 1_000])
    expect([flat.get("Sortino"), flat.get("Calmar")]).toEqual(["—", "—"])
    // Flat against a positive risk-free rate: every day below it, a figure.
    expect(metricsOf([1_000, 1_000, 1_000], { riskFreeRate: 0.05 }).get("Sortino")).toMatch(/^-\d+\.\d\d$/)
    // A fall: figures.
    const fell = metricsOf([1_010, 990, 1_040])
    expect(fell.get("Sortino")).toMatch(/^\d+\.\d\d$/)
    expect(fell.get("Calmar")).toMatch(/^\d+\.\d\d$/)
  })

  it("dates alone for daily bars, the time otherwise", () => {
    expect(Summary.time(day(2))).toBe("2024-01-02")
    expect(Summary.time(day(2) + 34_200_000)).toBe("2024-01-02 09:30:00Z")
  })

  it("the report names the run and ends with the checksum", () => {
    const text = Summary.render(result(), { strategy: "S", strategyFile: "s.yaml", seed: "0", symbols: 2 })
    expect(text).toContain("run       bt-test")
    expect(text).toContain("strategy  S (s.yaml)")
    expect(text).toContain("positions: none open")
    expect(text).toContain("last 2 of 2 trades")
    expect(text.trimEnd().split("\n").at(-1)).toBe(`checksum  ${"ab".repeat(32)}`)
  })
})

describe("events.ndjson", () => {
  // Made when the tests run, not when the file is read: a run filtered to other tests (`-t`) runs no
  // hook of this block, and a directory made here would be left behind.
  let dir = ""
  beforeAll(() => void (dir = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-eventlog-"))))
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it.live("every line, in order, across many buffers; closing twice is harmless", () =>
    Effect.gen(function*() {
      const file = Path.join(dir, "events.ndjson")
      const written = Array.from({ length: 5_000 }, (_, i) => JSON.stringify({ seq: i + 1, pad: "é".repeat(i % 97) }))
      yield* Effect.scoped(Effect.gen(function*() {
        const log = yield* EventLog.open(file)
        for (const line of written) log.write(line)
        yield* log.close
        yield* log.close
      }))
      expect(fs.readFileSync(file, "utf8")).toBe(written.map((line) => `${line}\n`).join(""))
    }))

  it.live("the scope closes it when the run ends early, keeping what was written", () =>
    Effect.gen(function*() {
      const file = Path.join(dir, "early.ndjson")
      const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const log = yield* EventLog.open(file)
        log.write("{\"seq\":1}")
        return yield* Effect.fail("stopped")
      })))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(fs.readFileSync(file, "utf8")).toBe("{\"seq\":1}\n")
    }))

  it.live("a directory that is not there is an OutputError naming the file", () =>
    Effect.gen(function*() {
      const file = Path.join(dir, "missing", "events.ndjson")
      const error = yield* Effect.flip(Effect.scoped(EventLog.open(file)))
      expect(error).toMatchObject({ _tag: "OutputError", path: file })
      expect(error.reason).toMatch(/^cannot create it: ENOENT/)
    }))
})
