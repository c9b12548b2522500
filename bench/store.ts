/**
 * Store benchmark (`npm run bench -- store`), against real Postgres: `DATABASE_URL`'s server, or
 * the local one at postgres://postgres@127.0.0.1:5432/postgres — the benchmark creates a database
 * of its own there (Database.temporary) and drops it at the end.
 *
 * - `durable_events_per_sec`: events a recorder makes durable (committed, with their rounds,
 *   opinions, decisions, verdicts, orders, fills, trades and snapshots and the hash chain) per
 *   second, fed as fast as it takes them: the events of a run with an order on every bar (W3's
 *   workload, six to seven events a bar), generated first and timed from the first event handed
 *   over to the last one committed.
 * - `w1_persisted_bars_per_sec`: W1 (bench/backtest.ts) recorded as it runs, timed to the run's row
 *   finished (every event committed), beside `w1_bars_per_sec` measured here the same way without
 *   the store, and their ratio.
 * - `replay_bars_per_sec`: `swarm replay` of the stored W1 run: re-executed and compared with the
 *   recording event by event.
 * - `audit_verify_events_per_sec`: `swarm audit verify` (Audit.verifyRun) of a stored run of W3's
 *   workload (an order on every bar: opinions, decisions, verdicts, orders, fills and snapshots on
 *   every bar): its hash chain, and every row of the tables its events feed held to its event.
 */
import { Effect, Layer } from "effect"
import type { RunEvent } from "../schemas/RunEvent.js"
import * as DataSource from "../src/market/DataSource.js"
import * as Backtest from "../src/swarm/Backtest.js"
import * as Audit from "../src/store/Audit.js"
import * as Database from "../src/store/Database.js"
import { migrate } from "../src/store/Migrations.js"
import * as RunRecorder from "../src/store/RunRecorder.js"
import * as Runs from "../src/store/Runs.js"
import * as StoredRun from "../src/store/StoredRun.js"
import * as Strategies from "../src/store/Strategies.js"
import * as Users from "../src/store/Users.js"
import { syntheticConfig, W1_BARS, W1_DESCRIPTION, W1_SEED, W1_SYMBOLS, w1, W3_SEED, w3 } from "./internal/backtestWorkloads.js"
import { emit, forceGc, machine, median, progress, spread } from "./internal/report.js"

const ROUNDS = 3
const DURABLE_SYMBOLS = 20
const DURABLE_BARS = 5_000
const AUDITED_BARS = Number(process.env.STORE_AUDITED_BARS ?? 2_500)
const AUDIT_ROUNDS = Number(process.env.STORE_AUDIT_ROUNDS ?? ROUNDS)

const MACHINE = machine()
const figure = (metric: string, value: number, unit: string, workload: string) =>
  emit({ bench: "store", metric, value, unit, workload, machine: MACHINE })
const integer = (value: number) => String(Math.round(value))

const serverUrl = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL.trim() !== ""
  ? process.env.DATABASE_URL
  : "postgres://postgres@127.0.0.1:5432/postgres"

// --- durable events --------------------------------------------------------------------------

const durableFigure = Effect.gen(function*() {
  const owner = yield* Users.ensureLocal()
  const rates: Array<number> = []
  let described = ""
  for (let round = 0; round < ROUNDS; round++) {
    const options = w3(DURABLE_SYMBOLS, DURABLE_BARS)
    const saved = yield* Strategies.saveVersion(owner, options.strategy)
    const created = yield* Runs.create({
      owner,
      strategyId: saved.strategyId,
      strategyVersion: saved.version,
      strategy: options.strategy,
      mode: "backtest",
      seed: "0",
      dataSource: DataSource.encode(DataSource.synthetic(syntheticConfig(DURABLE_SYMBOLS, DURABLE_BARS, W3_SEED))),
      dataFingerprint: options.feed.fingerprint,
      eventDetail: "decisions"
    })
    // The events first (not timed), as the run under that id writes them.
    const events: Array<RunEvent> = []
    const lines: Array<string> = []
    yield* Backtest.run({
      ...options,
      runId: created.id,
      onEvent: (event, json) => {
        events.push(event)
        lines.push(json)
      }
    })
    forceGc()
    const t0 = performance.now()
    yield* Effect.scoped(Effect.gen(function*() {
      const recorder = yield* RunRecorder.make(created.id)
      // Handed over a slice's worth at a time, with a turn for the writer in between, as a run does.
      for (let i = 0; i < events.length; i++) {
        recorder.sink(events[i]!, lines[i]!)
        if (i % 2_000 === 1_999) {
          yield* Effect.yieldNow()
          yield* recorder.pace
        }
      }
      yield* recorder.flush
    }))
    const seconds = (performance.now() - t0) / 1000
    rates.push(events.length / seconds)
    described = `${events.length} events of W3's workload (${DURABLE_SYMBOLS} x ${DURABLE_BARS} bars, an order on every bar)`
    progress(`durable round ${round}: ${events.length} events in ${seconds.toFixed(2)} s, ${integer(events.length / seconds)} events/s`)
  }
  figure(
    "durable_events_per_sec",
    Math.round(median(rates)),
    "events/s",
    `${described}, generated first, then handed to a RunRecorder 2,000 at a time and timed until the last is committed (Postgres ` +
      `COPY in group-commit transactions: events with their hash chain, plus rounds, opinions, decisions, verdicts, orders, fills, ` +
      `trades, snapshots and positions); ${spread(rates, integer)} events/s`
  )
})

// --- W1 persisted and replayed ---------------------------------------------------------------

/** W1 as a stored run, with the data source that re-opens its feed. */
const stored = (bars: number): StoredRun.Options => {
  const { feed, strategy } = w1(W1_SYMBOLS, bars)
  return { strategy, feed, dataSource: DataSource.synthetic(syntheticConfig(W1_SYMBOLS, bars, W1_SEED)) }
}

const w1Figures = Effect.gen(function*() {
  const warm = w1(W1_SYMBOLS, 1_000)
  yield* StoredRun.backtest(stored(1_000))
  yield* Backtest.run(warm)
  const plain: Array<number> = []
  const persisted: Array<number> = []
  const replayed: Array<number> = []
  let last: StoredRun.Stored | undefined
  for (let round = 0; round < ROUNDS; round++) {
    forceGc()
    let t0 = performance.now()
    const result = yield* Backtest.run(w1(W1_SYMBOLS, W1_BARS))
    plain.push(result.counts.bars / ((performance.now() - t0) / 1000))
    forceGc()
    t0 = performance.now()
    last = yield* StoredRun.backtest(stored(W1_BARS))
    persisted.push(last.result.counts.bars / ((performance.now() - t0) / 1000))
    forceGc()
    t0 = performance.now()
    const replay = yield* StoredRun.replay(last.run)
    replayed.push(replay.result!.counts.bars / ((performance.now() - t0) / 1000))
    progress(
      `w1 round ${round}: ${integer(plain.at(-1)!)} bars/s plain, ${integer(persisted.at(-1)!)} persisted ` +
        `(${last.result.counts.events} events), ${integer(replayed.at(-1)!)} replayed`
    )
  }
  const events = last!.result.counts.events
  const plainMedian = median(plain)
  const persistedMedian = median(persisted)
  figure(
    "w1_persisted_bars_per_sec",
    Math.round(persistedMedian),
    "bars/s",
    `${W1_DESCRIPTION(W1_SYMBOLS, W1_BARS)}; recorded in Postgres as it runs (${events} events with their rows), timed from the call ` +
      `to the run's row finished with every event committed; 1 warm-up, then ${spread(persisted, integer)} bars/s`
  )
  figure(
    "w1_bars_per_sec_same_process",
    Math.round(plainMedian),
    "bars/s",
    `the same W1 run without the store, in this process, alternating with the persisted rounds; ${spread(plain, integer)} bars/s`
  )
  figure("w1_persisted_ratio", Number((persistedMedian / plainMedian).toFixed(3)), "ratio", "w1_persisted_bars_per_sec / w1_bars_per_sec_same_process (target >= 0.5)")
  figure(
    "replay_bars_per_sec",
    Math.round(median(replayed)),
    "bars/s",
    `StoredRun.replay of the stored W1 run: re-executed from its recorded inputs and compared with the recording (${events} events ` +
      `read back from Postgres and compared byte for byte); ${spread(replayed, integer)} bars/s`
  )
})

// --- audit verify ----------------------------------------------------------------------------------

const auditFigure = Effect.gen(function*() {
  const options = w3(DURABLE_SYMBOLS, AUDITED_BARS)
  const stored = yield* StoredRun.backtest({
    strategy: options.strategy,
    feed: options.feed,
    registry: options.registry!,
    dataSource: DataSource.synthetic(syntheticConfig(DURABLE_SYMBOLS, AUDITED_BARS, W3_SEED))
  })
  const events = stored.result.counts.events
  const rates: Array<number> = []
  for (let round = 0; round < AUDIT_ROUNDS; round++) {
    forceGc()
    const t0 = performance.now()
    const report = yield* Audit.verifyRun(stored.run)
    const seconds = (performance.now() - t0) / 1000
    if (!report.ok) return yield* Effect.dieMessage(`the stored run does not verify: ${report.reason}`)
    rates.push(events / seconds)
    progress(`audit round ${round}: ${events} events verified in ${seconds.toFixed(2)} s, ${integer(events / seconds)} events/s`)
  }
  figure(
    "audit_verify_events_per_sec",
    Math.round(median(rates)),
    "events/s",
    `Audit.verifyRun (swarm audit verify) of a stored run of W3's workload (${DURABLE_SYMBOLS} x ${AUDITED_BARS} bars, an order on ` +
      `every bar: ${events} events): the hash chain, checksum and inputs, and every row of the tables the events feed held to its ` +
      `event, in one snapshot; median of ${AUDIT_ROUNDS}, ${spread(rates, integer)} events/s`
  )
})

const main = Effect.gen(function*() {
  const url = yield* Database.temporary(serverUrl, "swarm_bench")
  progress(`store bench on ${Database.maskUrl(url)}`)
  const store = Layer.effectDiscard(migrate).pipe(Layer.provideMerge(Database.layerWith({ url })))
  yield* Effect.gen(function*() {
    if (process.env.STORE_ONLY !== "audit") {
      yield* durableFigure
      yield* w1Figures
    }
    yield* auditFigure
  }).pipe(Effect.provide(store))
})

Effect.runPromise(Effect.scoped(main)).catch((error) => {
  progress(`store bench failed: ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
})
