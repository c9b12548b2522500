/**
 * Metrics over a period of a run, on a recorded backtest of the sample data (the SMA crossover
 * example: 500 daily bars, fills weeks apart). The run's equity at every bar's close, rebuilt from
 * its data and fills (PeriodMetrics.ts), gives RunCompleted's metrics and — over a period — the
 * figures of daily marks computed here independently (cash and positions moved by the fills, valued
 * at the closes); inputs that are not the run's rebuild nothing.
 */
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import * as Format from "../../../agents/system/internal/Format.js"
import * as PeriodMetrics from "../../../agents/system/PeriodMetrics.js"
import * as Tools from "../../../agents/system/Tools.js"
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

// ---------------------------------------------------------------------------------------------

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
            `at ${Format.time(ts)} the rebuilt equity is ${Format.money(equity)}, the run recorded ${Format.money(equity + 1)}`
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
    }
  )
}
