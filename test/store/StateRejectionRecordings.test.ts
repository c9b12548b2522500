/**
 * Recorded runs and a decision the halt refused (`RunStarted.stateRejections`): a new run records
 * the flag, judges a decision the halted state rejected once while the halt and the consensus
 * stand, and replays so, byte for byte, the replay reading the flag back (src/store/RecordedStart.ts);
 * a run recorded before it judged it again on every bar, and replays so. On every back-end.
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

/** AAA bought on bar 0 (half the equity), down 60 % by bar 2: the drawdown halt; the script says flat from bar 4 on. */
const CLOSES = [100, 100, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40]
const registry = registryOf({ AAA: ["long", "long", "long", "long", "flat"] })
const strategy = Schema.decodeUnknownSync(Strategy)({
  name: "state rejections",
  symbols: ["AAA"],
  initialCash: "100000",
  allowShort: false,
  agents: [{ type: "test_script" }],
  sizing: { mode: "percent_of_equity", value: 50 },
  execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }
})

const csvData = Recordings.csvData("state-rejections", [series("AAA", CLOSES)])

const rejected = (events: ReadonlyArray<RunEvent>) =>
  events.filter((e) => e._tag === "VerdictGiven" && e.verdict.outcome === "rejected").length

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`a decision the halt refused and recorded runs (${backend.name})`, (it) => {
    describe("a new run", () => {
      it.effect("records the flag, judges the refused sale once, and replays byte for byte", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* csvData
          const events: Array<RunEvent> = []
          const { result, run } = yield* StoredRun.backtest({ strategy, feed, dataSource: source, registry, onEvent: (event) => void events.push(event) })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", stateRejections: "standing" })
          expect(result.tradingState).toBe("halted")
          expect(rejected(events)).toBe(1)
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
        }).pipe(Effect.scoped))
    })

    describe("a run recorded before it (no stateRejections)", () => {
      it.effect("replays byte for byte: the refused sale judged, and rejected, again on every bar, as recorded", () =>
        Effect.gen(function*() {
          const { events, result, run } = yield* Recordings.recordedBefore({
            strategy,
            data: yield* csvData,
            registry,
            recordedStart: { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "fills", analystProgress: "past_warm_up", downHalts: "settled" }
          })
          expect(events[0]!).not.toHaveProperty("stateRejections")
          // Bars 4 to 11.
          expect(rejected(events)).toBe(CLOSES.length - 4)
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
        }).pipe(Effect.scoped))
    })
  })
}
