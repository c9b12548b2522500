/**
 * Metrics over a period of a run, on a recorded backtest of the sample data (the SMA crossover
 * example: 500 daily bars, fills weeks apart). The run's equity at every bar's close, rebuilt from
 * its data and fills (PeriodMetrics.ts), gives RunCompleted's metrics and — over a period — the
 * figures of daily marks computed here independently (cash and positions moved by the fills, valued
 * at the closes); inputs that are not the run's rebuild nothing. `calculate_metrics` answers a
 * period with those figures, not with the equity at fills; a curve it cannot rebuild (the data
 * changed, a recorded equity it does not give) gives no return or risk figure; a run that has not
 * ended is answered as far as its bars are marked.
 */
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import * as Format from "../../../agents/system/internal/Format.js"
import * as PeriodMetrics from "../../../agents/system/PeriodMetrics.js"
import * as Tools from "../../../agents/system/Tools.js"
import * as ToolSpecs from "../../../agents/system/ToolSpecs.js"
import type { Metrics } from "../../../schemas/Metrics.js"
import type { Fill } from "../../../schemas/Order.js"
import { OrderFilled, RunCompleted } from "../../../schemas/RunEvent.js"
import * as DataSource from "../../../src/market/DataSource.js"
import type { Slice } from "../../../src/market/Feed.js"
import * as LlmRuntime from "../../../src/llm/LlmRuntime.js"
import type * as Database from "../../../src/store/Database.js"
import * as Runs from "../../../src/store/Runs.js"
import * as StoredRun from "../../../src/store/StoredRun.js"
import * as StrategyFile from "../../../src/swarm/StrategyFile.js"
import { tradeStats } from "../../../src/trading/Metrics.js"
import { backends, startTimeout } from "../../store/fixtures/backends.js"

const root = fileURLToPath(new URL("../../..", import.meta.url)).replace(/\/$/, "")
const DAY = 86_400_000

// ---------------------------------------------------------------------------------------------
// The run

interface Sample {
  readonly run: Runs.RunRecord
  /** What its RunCompleted event recorded. */
  readonly completed: Metrics
  readonly fills: ReadonlyArray<Fill>
  readonly slices: ReadonlyArray<Slice>
}

class SampleRun extends Context.Tag("test/SampleRun")<SampleRun, { readonly make: Effect.Effect<Sample> }>() {}

const sql = <A extends object>(f: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, unknown>) =>
  Effect.orDie(Effect.flatMap(SqlClient.SqlClient, f))

/** A new stored backtest of the SMA crossover example on the sample data, with what it recorded. */
const makeSample = Effect.gen(function*() {
  const strategy = yield* StrategyFile.load(`${root}/examples/sma-crossover.json`)
  const source = DataSource.csv([`${root}/data`])
  const feed = yield* DataSource.open(source)
  const stored = yield* StoredRun.backtest({ strategy, feed, dataSource: source }).pipe(Effect.provide(LlmRuntime.layerOffline))
  const run = yield* Runs.get(stored.run)
  const [ended] = yield* sql<{ body: string }>((s) => s`select body from run_events where run_id = ${stored.run} and tag = 'RunCompleted'`)
  const filled = yield* sql<{ body: string }>((s) => s`select body from run_events where run_id = ${stored.run} and tag = 'OrderFilled' order by seq`)
  return {
    run,
    completed: Schema.decodeUnknownSync(Schema.parseJson(RunCompleted))(ended!.body).metrics,
    fills: filled.map((row) => Schema.decodeUnknownSync(Schema.parseJson(OrderFilled))(row.body).fill),
    slices: [...feed]
  } satisfies Sample
}).pipe(Effect.orDie)

/** Each test makes its own run (some change what it recorded), on the layer's database. */
const sampleRun = Layer.effect(
  SampleRun,
  Effect.map(Effect.context<Database.Database>(), (context) => ({ make: Effect.provide(makeSample, context) }))
)

// ---------------------------------------------------------------------------------------------
// Daily marks, computed here

interface Mark {
  readonly ts: number
  readonly equity: number
  readonly exposed: boolean
}

/** The equity at every bar's close: cash moved by each fill, plus each position at its last close (micros, as plain numbers). */
const marksOf = (sample: Sample): Array<Mark> => {
  let cash = sample.run.strategy.initialCash as number
  const units = new Map<string, number>()
  const closes = new Map<string, number>()
  const marks: Array<Mark> = []
  let next = 0
  for (const slice of sample.slices) {
    for (const bar of slice.bars) closes.set(bar.symbol, bar.close)
    for (; next < sample.fills.length && sample.fills[next]!.ts === slice.ts; next++) {
      const fill = sample.fills[next]!
      const sign = fill.side === "buy" ? 1 : -1
      cash += -sign * fill.notional - fill.commission
      units.set(fill.symbol, (units.get(fill.symbol) ?? 0) + sign * fill.quantity)
    }
    let equity = cash
    let exposed = false
    for (const [symbol, held] of units) {
      if (Math.abs(held) < 1e-9) continue
      exposed = true
      equity += held * closes.get(symbol)! * 1_000_000
    }
    marks.push({ ts: slice.ts, equity, exposed })
  }
  expect(next).toBe(sample.fills.length)
  return marks
}

interface Expected {
  readonly bars: number
  readonly days: number
  readonly totalReturn: number
  readonly annualVolatility: number
  readonly sharpe: number
  readonly sortino: number
  readonly maxDrawdown: number
  readonly peakTs: number
  readonly troughTs: number
  readonly recoveryTs: number | null
  readonly exposure: number
}

/** docs/metrics.md's definitions, written out: daily closes from the equity before the period, sample deviation, √252. */
const figuresOf = (marks: ReadonlyArray<Mark>, initialCash: number, from: number, to: number): Expected => {
  const inPeriod = marks.filter((m) => m.ts >= from && m.ts < to)
  const base = marks.filter((m) => m.ts < from).at(-1)?.equity ?? initialCash
  const closes = new Map<number, number>()
  for (const m of inPeriod) closes.set(Math.floor(m.ts / DAY), m.equity)
  const returns: Array<number> = []
  let previous = base
  for (const close of closes.values()) {
    returns.push(close / previous - 1)
    previous = close
  }
  const n = returns.length
  const mean = returns.reduce((a, r) => a + r, 0) / n
  const sd = Math.sqrt(returns.reduce((a, r) => a + (r - mean) ** 2, 0) / (n - 1))
  const downside = Math.sqrt(returns.reduce((a, r) => a + Math.min(0, r) ** 2, 0) / n)
  // The running peak starts at the equity before the period, at the period's first bar.
  let peak = base
  let peakTs = inPeriod[0]!.ts
  let maxDrawdown = 0
  let at = { peakTs: 0, troughTs: 0, recoveryTs: null as number | null }
  let open = false
  for (const m of inPeriod) {
    if (m.equity >= peak) {
      if (open) at = { ...at, recoveryTs: m.ts }
      open = false
      peak = m.equity
      peakTs = m.ts
    } else if ((peak - m.equity) / peak > maxDrawdown) {
      maxDrawdown = (peak - m.equity) / peak
      at = { peakTs, troughTs: m.ts, recoveryTs: null }
      open = true
    }
  }
  return {
    bars: inPeriod.length,
    days: closes.size,
    totalReturn: inPeriod.at(-1)!.equity / base - 1,
    annualVolatility: sd * Math.sqrt(252),
    sharpe: (mean / sd) * Math.sqrt(252),
    sortino: (mean / downside) * Math.sqrt(252),
    maxDrawdown,
    ...at,
    exposure: inPeriod.filter((m) => m.exposed).length / inPeriod.length
  }
}

const expectFigures = (m: Metrics, expected: Expected) => {
  expect(m.bars).toBe(expected.bars)
  expect(m.days).toBe(expected.days)
  expect(m.totalReturn).toBeCloseTo(expected.totalReturn, 9)
  expect(m.annualVolatility).toBeCloseTo(expected.annualVolatility, 7)
  expect(m.sharpe).toBeCloseTo(expected.sharpe, 6)
  expect(m.sortino).toBeCloseTo(expected.sortino, 6)
  expect(m.maxDrawdown).toBeCloseTo(expected.maxDrawdown, 9)
  expect([m.maxDrawdownPeakTs, m.maxDrawdownTroughTs, m.maxDrawdownRecoveryTs]).toEqual([expected.peakTs, expected.troughTs, expected.recoveryTs])
  expect(m.exposure).toBeCloseTo(expected.exposure, 12)
}

/** The rebuilt curve of the sample run, over [from, to), checked against what it recorded (or not). */
const curveOf = (sample: Sample, options: Partial<PeriodMetrics.PeriodInput> = {}) =>
  Effect.gen(function*() {
    const { run } = sample
    const recorded = yield* sql<{ ts: number; equity: number }>((s) => s`select ts, equity from equity_snapshots where run_id = ${run.id} order by seq`)
    return PeriodMetrics.periodCurve({
      initialCash: run.strategy.initialCash,
      symbols: run.strategy.symbols,
      slices: sample.slices,
      fills: sample.fills,
      config: run.strategy.metrics,
      recordedEquity: new Map(recorded.map((r) => [r.ts, r.equity])),
      recordedMetrics: sample.completed,
      ...options
    })
  })

/** The tool as the offline agent calls it for `question`. */
const ask = (run: Runs.RunRecord, question: string) =>
  Effect.gen(function*() {
    const request = ToolSpecs.routeQuestion(question)
    expect(request?.tool).toBe("calculate_metrics")
    return yield* Effect.orDie(Tools.run(request!, run))
  })

/** The figures of an answer, whatever its basis (the figures are checked first, then what they say they are). */
const figures = (outcome: Tools.ToolOutcome) => (outcome.result as Extract<Tools.MetricsResult, { basis: "bars" }>).metrics

// ---------------------------------------------------------------------------------------------

describe("a period's wording", () => {
  it("says the period as it was asked: a midnight end is through the day before it, another end until its time", () => {
    const said = (from: number | null, to: number | null) =>
      Tools.describeMetrics({ basis: "trades", from, to, unavailable: "-", trades: tradeStats([]) }).split(": no return")[0]
    expect(said(Date.UTC(2023, 0, 1), Date.UTC(2023, 6, 1))).toBe("From 2023-01-01 through 2023-06-30")
    expect(said(null, Date.UTC(2023, 6, 1))).toBe("From the start through 2023-06-30")
    expect(said(Date.UTC(2023, 0, 1, 9, 30), Date.UTC(2023, 5, 30, 16))).toBe("From 2023-01-01 09:30 UTC until 2023-06-30 16:00 UTC")
    expect(said(Date.UTC(2023, 0, 1), null)).toBe("From 2023-01-01 to the end")
  })
})

for (const backend of backends) {
  layer(Layer.provideMerge(sampleRun, backend.store), { timeout: startTimeout, excludeTestServices: true })(
    `period metrics (${backend.name})`,
    (it) => {
      it.effect("the curve rebuilt from the run's data and fills gives RunCompleted's metrics", () =>
        Effect.gen(function*() {
          const sample = yield* Effect.flatMap(SampleRun, (s) => s.make)
          const closed = yield* Effect.orDie(Tools.trades(sample.run.id))
          for (const checked of [true, false]) {
            const curve = yield* curveOf(sample, checked ? {} : { recordedEquity: new Map(), recordedMetrics: null })
            expect(curve._tag).toBe("Right")
            if (curve._tag === "Right") {
              expect(curve.right.metrics(closed)).toEqual(sample.completed)
              expect(curve.right.lastTs).toBe(sample.run.to)
            }
          }
          // And the marks computed here give the same figures.
          expectFigures(sample.completed, figuresOf(marksOf(sample), sample.run.strategy.initialCash, -Infinity, Infinity))
        }), { timeout: 120_000 })

      it.effect("over a period, the rebuilt curve starts from the equity before it and gives the daily marks' figures", () =>
        Effect.gen(function*() {
          const sample = yield* Effect.flatMap(SampleRun, (s) => s.make)
          const [from, to] = [Date.UTC(2022, 7, 15), Date.UTC(2023, 2, 1)]
          const curve = yield* curveOf(sample, { from, to })
          expect(curve._tag).toBe("Right")
          if (curve._tag !== "Right") return
          const m = curve.right.metrics([])
          const marks = marksOf(sample)
          expectFigures(m, figuresOf(marks, sample.run.strategy.initialCash, from, to))
          expect(m.initialCash).toBe(marks.filter((mark) => mark.ts < from).at(-1)!.equity)
          expect(m.startTs).toBe(marks.find((mark) => mark.ts >= from)!.ts)
        }), { timeout: 120_000 })

      it.effect("inputs that are not what the run booked and marked rebuild no curve, and say where", () =>
        Effect.gen(function*() {
          const sample = yield* Effect.flatMap(SampleRun, (s) => s.make)
          const reasonOf = (options: Partial<PeriodMetrics.PeriodInput>) =>
            Effect.map(curveOf(sample, options), (curve) => (curve._tag === "Left" ? curve.left.reason : "(rebuilt)"))
          const recorded = new Map((yield* sql<{ ts: number; equity: number }>((s) =>
            s`select ts, equity from equity_snapshots where run_id = ${sample.run.id} order by seq`)).map((r) => [r.ts, r.equity]))
          const [ts, equity] = [...recorded][3]!
          expect(yield* reasonOf({ recordedEquity: new Map([...recorded, [ts, equity + 1]]) })).toBe(
            `at ${Format.time(ts)} the rebuilt equity is ${Format.exactMoney(equity)}, the run recorded ${Format.exactMoney(equity + 1)}`
          )
          // A bar left out of the data: the run's own figures are not given back.
          const slices = sample.slices.filter((slice) => slice.ts !== Date.UTC(2022, 3, 1))
          expect(yield* reasonOf({ slices, recordedEquity: new Map() })).toMatch(/^the rebuilt curve is not the run's: bars comes out 499, the run recorded 500/)
          // A fill moved off its bar.
          const fills = sample.fills.map((fill, i) => (i === 4 ? { ...fill, ts: (fill.ts + 3_600_000) as typeof fill.ts } : fill))
          expect(yield* reasonOf({ fills, recordedMetrics: null, recordedEquity: new Map() })).toBe(
            `the fill ${fills[4]!.id} at ${new Date(fills[4]!.ts).toISOString()} is at no bar time of the run's data`
          )
        }), { timeout: 120_000 })

      it.effect("a period holding the whole run is answered with the run's own metrics", () =>
        Effect.gen(function*() {
          const sample = yield* Effect.flatMap(SampleRun, (s) => s.make)
          // The probe's question: the fills' 27 marks gave Sharpe 5.42 and volatility 42.2% here.
          const answer = yield* ask(sample.run, "what is the total return and max drawdown since 2022-01-01")
          expect(figures(answer)).toEqual(sample.completed)
          expect(answer.result).toMatchObject({ basis: "run" })
          expect(answer.sentences).toContain("Sharpe 1.42")
          expect(answer.sentences).toContain("its own figures, recorded when it ended")
        }), { timeout: 120_000 })

      it.effect("a sub-period's figures are those of the daily marks, not of the equity at fills", () =>
        Effect.gen(function*() {
          const sample = yield* Effect.flatMap(SampleRun, (s) => s.make)
          const answer = yield* ask(sample.run, "What is the Sharpe ratio between 2022-06-01 and 2022-12-31?")
          const m = figures(answer)
          expect(answer.arguments).toEqual({ from: "2022-06-01T00:00:00.000Z", to: "2023-01-01T00:00:00.000Z" })
          expectFigures(m, figuresOf(marksOf(sample), sample.run.strategy.initialCash, Date.UTC(2022, 5, 1), Date.UTC(2023, 0, 1)))
          expect(answer.result).toMatchObject({ basis: "bars", incomplete: null })
          // Its trades are those closed in it.
          const closed = yield* Effect.orDie(Tools.trades(sample.run.id, { from: Date.UTC(2022, 5, 1), to: Date.UTC(2023, 0, 1) }))
          expect(m.tradeCount).toBe(closed.length)
          expect(answer.sentences).toContain("from the equity at every bar's close, rebuilt from the run's data and fills")
          expect(answer.sentences).not.toContain("at fills")
        }), { timeout: 120_000 })

      it.effect("the run's max drawdown, inside a period, is that period's: found and recovered there", () =>
        Effect.gen(function*() {
          const sample = yield* Effect.flatMap(SampleRun, (s) => s.make)
          const { completed, run } = sample
          const answer = yield* ask(run, "what is the total return and max drawdown between 2023-01-01 and 2023-06-30")
          const m = figures(answer)
          expect(completed.maxDrawdownRecoveryTs).toBe(Date.UTC(2023, 5, 30))
          expect(m.maxDrawdown).toBe(completed.maxDrawdown)
          expect([m.maxDrawdownPeakTs, m.maxDrawdownTroughTs, m.maxDrawdownRecoveryTs]).toEqual([
            completed.maxDrawdownPeakTs,
            completed.maxDrawdownTroughTs,
            completed.maxDrawdownRecoveryTs
          ])
          expect(answer.sentences).toContain("max drawdown 5.2% (from 2023-03-09 00:00 UTC to 2023-05-25 00:00 UTC, recovered 2023-06-30 00:00 UTC)")
          // The period as it was asked: through its last day, not to the midnight after it.
          expect(answer.sentences.startsWith("From 2023-01-01 through 2023-06-30 (")).toBe(true)
          expectFigures(m, figuresOf(marksOf(sample), run.strategy.initialCash, Date.UTC(2023, 0, 1), Date.UTC(2023, 6, 1)))
          expect(answer.result).toMatchObject({ basis: "bars" })
        }), { timeout: 120_000 })

      it.effect("a curve that cannot be rebuilt gives the period's trade figures only, saying why; never figures of another curve", () =>
        Effect.gen(function*() {
          const sample = yield* Effect.flatMap(SampleRun, (s) => s.make)
          const { run } = sample
          const from = Date.UTC(2022, 5, 1)
          const closed = yield* Effect.orDie(Tools.trades(run.id, { from }))
          const unavailable = (reason: string) =>
            Effect.gen(function*() {
              const result = yield* Effect.orDie(Tools.metrics(yield* Effect.orDie(Runs.get(run.id)), from))
              expect(result).toMatchObject({ basis: "trades", trades: { tradeCount: closed.length } })
              expect((result as { unavailable: string }).unavailable).toContain(reason)
              const sentences = Tools.describeMetrics(result)
              expect(sentences).toContain("no return, risk or drawdown figure can be given")
              expect(sentences).not.toMatch(/Sharpe|drawdown \d/)
            })

          // An equity the run recorded at a fill that the rebuilt curve does not give.
          const [snapshot] = yield* sql<{ seq: number; equity: number }>((s) =>
            s`select seq, equity from equity_snapshots where run_id = ${run.id} order by seq limit 1 offset 5`)
          yield* sql((s) => s`update equity_snapshots set equity = ${snapshot!.equity + 1} where run_id = ${run.id} and seq = ${snapshot!.seq}`)
          yield* unavailable(`the run recorded ${Format.exactMoney(snapshot!.equity + 1)}`)
          yield* sql((s) => s`update equity_snapshots set equity = ${snapshot!.equity} where run_id = ${run.id} and seq = ${snapshot!.seq}`)
          expect((yield* Effect.orDie(Tools.metrics(run, from))).basis).toBe("bars")

          // Data files that are gone.
          const gone = JSON.stringify({ _tag: "csv", paths: [`${root}/no-such-data`] })
          yield* sql((s) => s`update runs set data_source = ${gone}::jsonb where id = ${run.id}`)
          yield* unavailable("the run's data cannot be read as it was")
        }), { timeout: 120_000 })

      it.effect("a run that has not ended is answered as far as its bars are marked, and says so", () =>
        Effect.gen(function*() {
          const sample = yield* Effect.flatMap(SampleRun, (s) => s.make)
          const { run } = sample
          // The run as it stood when stopped after the 20th fill: its later rows never written, no results.
          const [cut] = yield* sql<{ seq: number; at: number }>((s) =>
            s`select seq, at from run_events where run_id = ${run.id} and tag = 'OrderFilled' order by seq limit 1 offset 19`)
          for (const table of ["run_events", "fills", "trades", "equity_snapshots", "positions", "orders", "decisions", "verdicts"]) {
            yield* sql((s) => s`delete from ${s(table)} where run_id = ${run.id} and seq > ${cut!.seq}`)
          }
          yield* sql((s) => s`update runs set status = 'stopped', metrics = null, period_from = null, period_to = null where id = ${run.id}`)
          const stopped = yield* Effect.orDie(Runs.get(run.id))
          const result = yield* Effect.orDie(Tools.metrics(stopped))
          // The bar of its last event may be in mid-record: the bars before it are marked for certain.
          const times = sample.slices.map((s) => s.ts)
          const through = times[times.findLastIndex((ts) => ts <= cut!.at) - 1]!
          const m = (result as Extract<Tools.MetricsResult, { basis: "bars" }>).metrics
          const marks = marksOf({ ...sample, fills: sample.fills.filter((f) => f.ts <= through) }).filter((mark) => mark.ts <= through)
          expectFigures(m, figuresOf(marks, run.strategy.initialCash, -Infinity, Infinity))
          expect(result).toMatchObject({ basis: "bars", incomplete: { status: "stopped", through } })
          expect(m.tradeCount).toBe((yield* Effect.orDie(Tools.trades(run.id, { to: through + 1 }))).length)
          expect(Tools.describeMetrics(result)).toContain(
            `The run was stopped before its end: its bars are marked up to ${new Date(through).toISOString().slice(0, 10)} 00:00 UTC`
          )
        }), { timeout: 120_000 })
    }
  )
}
