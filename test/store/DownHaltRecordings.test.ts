/**
 * Recorded runs and the risk officer's moves under the coordinator's halt (`RunStarted.downHalts`):
 * a new run records the flag and its moves after the halt lifts — or, ending under the halt, at its
 * end — and replays so, byte for byte, the replay reading the flag back (src/store/RecordedStart.ts);
 * a run recorded before a run's end settled the halt (`chained`) ended halted, and replays so. On
 * every back-end.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { registryOf } from "../swarm/recorded.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import * as Recordings from "./fixtures/recordings.js"

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)

const series = (symbol: string, closes: ReadonlyArray<number>): Array<Bar> =>
  closes.map((close, i) => {
    const open = i === 0 ? close : closes[i - 1]!
    return { symbol: symbol as Bar["symbol"], ts: (START + i * DAY) as Bar["ts"], open, high: Math.max(open, close), low: Math.min(open, close), close, volume: 1_000 }
  })

/** AAA bought on bar 0, down 12 % on bar 2 (the daily loss breaker); BBB wanted on bar 1. */
const DROP = [100, 100, 88, 88, 88, 88, 88, 88, 88]
const registry = registryOf({ AAA: ["long"], BBB: ["flat", "long"] })
const strategy = Schema.decodeUnknownSync(Strategy)({
  name: "down halts",
  symbols: ["AAA", "BBB"],
  initialCash: "100000",
  allowShort: false,
  agents: [{ type: "test_script" }],
  sizing: { mode: "percent_of_equity", value: 50 },
  execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }
})

const csvData = Recordings.csvData("down-halts", [series("AAA", DROP), series("BBB", DROP.map(() => 10))])
/** The same to bar 3, where the data ends: the officer failing the judgements of bars 1 to 3, the run ends under the halt. */
const endingDown = Recordings.csvData("down-halts-end", [series("AAA", DROP.slice(0, 4)), series("BBB", DROP.slice(0, 4).map(() => 10))])
/** The risk officer's 2nd, 4th and 6th messages: the judgements of bars 1, 2 and 3 (its 3rd and 5th, the ledger's word on bars 2 and 3). */
const downToTheEnd = { risk: { at: [2, 4, 6] } }

const changesOf = (events: ReadonlyArray<RunEvent>) =>
  events.flatMap((e) => (e._tag === "TradingStateChanged" ? [[e.transition.from, e.transition.to, e.transition.cause]] : []))

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`the coordinator's halt and recorded runs (${backend.name})`, (it) => {
    describe("a new run whose risk officer moves its state under the coordinator's halt", () => {
      it.effect("records the flag and a whole chain of changes, and replays byte for byte", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* csvData
          const events: Array<RunEvent> = []
          // The risk officer crashes on its 2nd and 4th messages: the judgements of bars 1 and 2.
          const { result, run } = yield* StoredRun.backtest({ strategy, feed, dataSource: source, registry, faults: { risk: { at: [2, 4] } }, onEvent: (event) => void events.push(event) })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", downHalts: "settled" })
          const changes = events.flatMap((e) => (e._tag === "TradingStateChanged" ? [[e.transition.from, e.transition.to, e.transition.cause]] : []))
          expect(changes).toEqual([["active", "halted", "system"], ["halted", "active", "system"], ["active", "reducing", "daily_loss_breaker"], ["reducing", "active", "new_trading_day"]])
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
        }).pipe(Effect.scoped))

      it.effect("ending under the halt, records it settled at the end, and replays byte for byte", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* endingDown
          const events: Array<RunEvent> = []
          const { result, run } = yield* StoredRun.backtest({ strategy, feed, dataSource: source, registry, faults: downToTheEnd, onEvent: (event) => void events.push(event) })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", downHalts: "settled" })
          expect(changesOf(events)).toEqual([["active", "halted", "system"], ["halted", "active", "system"], ["active", "reducing", "daily_loss_breaker"], ["reducing", "active", "new_trading_day"]])
          expect(result.tradingState).toBe("active")
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.result!.tradingState).toBe("active")
        }).pipe(Effect.scoped))
    })

    describe("a run recorded before a run's end settled the coordinator's halt (downHalts: chained)", () => {
      it.effect("replays byte for byte: it ends halted, the officer's moves under the halt unrecorded, as recorded", () =>
        Effect.gen(function*() {
          const { events, result, run } = yield* Recordings.recordedBefore({
            strategy,
            data: yield* endingDown,
            registry,
            faults: downToTheEnd,
            recordedStart: { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "fills", analystProgress: "past_warm_up", downHalts: "chained" }
          })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", downHalts: "chained" })
          expect(changesOf(events)).toEqual([["active", "halted", "system"]])
          expect(result.tradingState).toBe("halted")
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
          expect(again.result!.tradingState).toBe("halted")
        }).pipe(Effect.scoped))
    })
  })
}
