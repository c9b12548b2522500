/**
 * Recorded runs and the breakers checked at every mark (`RunStarted.breakers`): a run recorded
 * before that — its `RunStarted` without the flag, its drawdown halt recorded only when the next
 * intent was judged — replays and resumes byte for byte, checking its breakers as it did; a new run
 * records the flag, halts on the bar its marks cross the limit, and replays so. A run recorded with
 * `marks` (before `fills`: same-close fills not checked until the next marks) replays and resumes as
 * it was too. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { analysts } from "../../agents/registry.js"
import type { AnyModel, Model } from "../../agents/analysts/Model.js"
import type { Bar } from "../../schemas/Market.js"
import type { Direction } from "../../schemas/Opinion.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import * as Recordings from "./fixtures/recordings.js"
import { crashAt } from "./fixtures/checks.js"

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)

/** Long on every bar of AAA until bar 18, then flat. */
const script: Model<{}, { bars: number }, {}> = {
  type: "test_script",
  description: "test: long until bar 18, then flat",
  config: Schema.Struct({}),
  horizon: () => 1,
  init: () => ({ bars: 0 }),
  update: (state) => ({ direction: state.bars++ < 18 ? "long" as Direction : "flat", confidence: 1, features: {} }),
  explain: ({ direction }) => direction
}
const registry = new Map<string, AnyModel>([...analysts, [script.type, script as AnyModel]])

/** Half the equity in AAA at 100, then down 4 a bar: 26 % below the peak at 48 on bar 14, where nothing is decided. */
const CLOSES = [100, 100, 96, 92, 88, 84, 80, 76, 72, 68, 64, 60, 56, 52, 48, 48, 48, 47, 47, 47, 47]
const barsOf = (closes: ReadonlyArray<number>): Array<Bar> =>
  closes.map((close, i) => {
    const open = i === 0 ? close : closes[i - 1]!
    return { symbol: "AAA" as Bar["symbol"], ts: (START + i * DAY) as Bar["ts"], open, high: Math.max(open, close), low: Math.min(open, close), close, volume: 1_000 }
  })
const bars = barsOf(CLOSES)

/**
 * Half the equity in AAA (500 at 100), filled at the deciding bar's close with 4 a share of
 * commission (equity 98,000), then down 2.75 a bar to 56 on bar 17, and 56 on bar 18, where the
 * script sells: its marks are 24 % below the peak of 100,000, the sale's commission takes equity to
 * 26 % (the limit is 25 %).
 */
const SLIDE = barsOf([100, ...Array.from({ length: 17 }, (_, i) => 100 - 2.75 * i), 56, 56, 56])

const strategy = (name: string, execution: object = { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }) =>
  Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: ["AAA"],
    initialCash: "100000",
    agents: [{ type: "test_script" }],
    sizing: { mode: "percent_of_equity", value: 50 },
    execution
  })
const sameClose = (name: string) =>
  strategy(name, { fillTiming: "same_close", slippageBps: 0, commission: { _tag: "per_share", perShare: "4" } })

/** The bars, as a CSV file in a directory of its own for the test's scope. */
const csvData = (data: ReadonlyArray<Bar> = bars) => Recordings.csvData("breakers", [data])

/**
 * A run recorded as a server before this change recorded it: its breakers checked only as intents
 * are judged, its `RunStarted` without `breakers` — the row, its events in the store and its end,
 * as `StoredRun.backtest` writes them.
 */
const recordedBefore = (
  name: string,
  how: { strategy?: Strategy; data?: ReadonlyArray<Bar>; recordedStart?: Backtest.Options["recordedStart"] } = {}
) =>
  Effect.flatMap(csvData(how.data), (data) =>
    Recordings.recordedBefore({ strategy: how.strategy ?? strategy(name), data, registry, recordedStart: how.recordedStart ?? {} }))

const halts = (events: ReadonlyArray<RunEvent>) =>
  events.flatMap((e) => (e._tag === "TradingStateChanged" ? [[Math.round((e.at - START) / DAY), e.transition.to, e.transition.cause]] : []))

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`breakers and recorded runs (${backend.name})`, (it) => {
    describe("a run recorded before its breakers were checked at every mark", () => {
      it.effect("replays byte for byte: halted when its next intent was judged, as recorded", () =>
        Effect.gen(function*() {
          const { events, result, run } = yield* recordedBefore("recorded before")
          expect(events[0]).toMatchObject({ _tag: "RunStarted" })
          expect(events[0]).not.toHaveProperty("breakers")
          expect(halts(events)).toEqual([[18, "halted", "drawdown_halt"]])
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
          expect(again.result!.tradingState).toBe("halted")
        }).pipe(Effect.scoped))

      it.effect("resumes as it was recorded after a crash past its crossing bar, and goes on so", () =>
        Effect.gen(function*() {
          const { events, result, run } = yield* recordedBefore("resumed before")
          // Crashed after the crossing bar (14), before the intent that recorded the halt (18).
          const cut = events.findLast((e) => e.at <= START + 16 * DAY)!.seq
          yield* crashAt(run, cut)
          const resumed = yield* StoredRun.resume(run, { registry })
          expect(resumed.recorded).toBe(cut)
          expect(resumed.result.checksum).toBe(result.checksum)
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ body: string }>`select body from run_events where run_id = ${run} and tag = 'TradingStateChanged'`
          expect(rows.map((row) => JSON.parse(row.body).at)).toEqual([START + 18 * DAY])
        }).pipe(Effect.scoped))
    })

    describe("a run recorded with its breakers checked at the marks only (before same-close fills were)", () => {
      const marks = (name: string) =>
        recordedBefore(name, {
          strategy: sameClose(name),
          data: SLIDE,
          recordedStart: { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "marks" }
        })

      it.effect("replays and resumes byte for byte: halted a bar after the sale whose commission crossed the limit, as recorded", () =>
        Effect.gen(function*() {
          const { events, result, run } = yield* marks("recorded with marks")
          expect(events[0]).toMatchObject({ _tag: "RunStarted", breakers: "marks" })
          expect(halts(events)).toEqual([[19, "halted", "drawdown_halt"]])
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
          // Crashed on the sale's bar, before the halt it recorded.
          yield* crashAt(run, events.findLast((e) => e.at <= START + 18 * DAY)!.seq)
          expect((yield* StoredRun.resume(run, { registry })).result.checksum).toBe(result.checksum)
        }).pipe(Effect.scoped))

      it.effect("the same run new halts on the sale's bar, records fills, and replays so", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* csvData(SLIDE)
          const events: Array<RunEvent> = []
          const { result, run } = yield* StoredRun.backtest({
            strategy: sameClose("new same close"),
            feed,
            dataSource: source,
            registry,
            onEvent: (event) => void events.push(event)
          })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", breakers: "fills" })
          expect(halts(events)).toEqual([[18, "halted", "drawdown_halt"]])
          expect((yield* StoredRun.replay(run, { registry })).checksum).toBe(result.checksum)
        }).pipe(Effect.scoped))
    })

    describe("a new run", () => {
      it.effect("records that it checks its breakers at every mark, halts on the crossing bar, and replays so", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* csvData()
          const events: Array<RunEvent> = []
          const { result, run } = yield* StoredRun.backtest({
            strategy: strategy("new run"),
            feed,
            dataSource: source,
            registry,
            onEvent: (event) => void events.push(event)
          })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", breakers: "fills" })
          expect(halts(events)).toEqual([[14, "halted", "drawdown_halt"]])
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          // Resumed after a crash between the crossing bar and the end: the same run.
          yield* crashAt(run, events.findLast((e) => e.at <= START + 16 * DAY)!.seq)
          expect((yield* StoredRun.resume(run, { registry })).result.checksum).toBe(result.checksum)
        }).pipe(Effect.scoped))
    })
  })
}
