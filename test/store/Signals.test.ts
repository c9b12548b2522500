/**
 * Outside signals (TradingView alerts) as inputs of a run: each is recorded as `SignalReceived`
 * at the slice it is delivered with, before that slice's events; the `tradingview` analyst's
 * opinion follows. A run that received signals replays byte for byte (`StoredRun.replay` delivers
 * the recorded ones again), a crashed one resumes into the very run it was, and a resumed run's
 * live source joins only once the recorded part is reproduced. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { ExternalSignal, SignalAction } from "../../schemas/ExternalSignal.js"
import type { Symbol, Timestamp } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { stored, symbolsOf } from "./fixtures/workload.js"

const tradingViewStrategy = (name: string) =>
  Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: symbolsOf(2),
    allowShort: true,
    agents: [{ type: "tradingview", params: { validity: 30 } }],
    sizing: { mode: "percent_of_equity", value: 10 }
  })

const signal = (symbol: string, action: SignalAction, n: number): ExternalSignal => ({
  source: "tradingview",
  symbol: symbol as Symbol,
  ticker: `TEST:${symbol}`,
  action,
  price: 100,
  alertId: `id:alert-${n}`,
  // Wall time at the edge: recorded, read by no agent.
  receivedAt: (1_700_000_000_000 + n) as Timestamp,
  ...(n % 2 === 0 ? { confidence: 0.9, timeframe: "15", indicators: { rsi: 28.5 } } : {})
})

const NONE: ReadonlyArray<ExternalSignal> = []

/** A deterministic source: alerts on the 40th, 90th and 150th slice (as a webhook would bring them). */
const scripted = () => {
  let calls = 0
  const plan: Record<number, ReadonlyArray<ExternalSignal>> = {
    40: [signal("S0", "buy", 1)],
    90: [signal("S1", "sell", 2), signal("S0", "close", 3)],
    150: [signal("S1", "buy", 4)]
  }
  return (_ts: Timestamp, _events: number) => plan[++calls] ?? NONE
}

const eventsOf = (run: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ seq: number; tag: string; body: string }>`
    select seq, tag, body from run_events where run_id = ${run} order by seq`).pipe(
    Effect.map((rows) => rows.map((row) => ({ seq: row.seq, tag: row.tag, event: JSON.parse(row.body) })))
  )

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`outside signals (${backend.name})`, (it) => {
    it.effect("recorded at their slice, followed by the tradingview analyst's opinion; the run replays byte for byte", () =>
      Effect.gen(function*() {
        const options = stored(2, 200, { strategy: tradingViewStrategy("signals replay"), mode: "paper", signals: scripted() })
        const { result, run } = yield* StoredRun.backtest(options)
        expect(result.status).toBe("completed")
        const events = yield* eventsOf(run)
        const received = events.filter((e) => e.tag === "SignalReceived")
        expect(received.map((e) => [e.event.signal.symbol, e.event.signal.action, e.event.signal.alertId])).toEqual([
          ["S0", "buy", "id:alert-1"],
          ["S1", "sell", "id:alert-2"],
          ["S0", "close", "id:alert-3"],
          ["S1", "buy", "id:alert-4"]
        ])
        // Each comes before its slice's opinions, at the slice's time.
        const first = received[0]!
        expect(first.event.at).toBe(first.event.ts)
        const opinion = events.find((e) => e.seq > first.seq && e.tag === "OpinionGiven")!
        expect(opinion.event.opinion).toMatchObject({ agent: "tradingview", symbol: "S0", ts: first.event.ts, direction: "long", confidence: 0.7 })
        expect(events.some((e) => e.tag === "OpinionGiven" && e.seq < first.seq)).toBe(false)
        // Nothing trades before the first alert: the analyst has nothing to say.
        expect(events.findIndex((e) => e.tag === "OrderPlaced")).toBeGreaterThan(events.indexOf(first))

        const replayed = yield* StoredRun.replay(run)
        expect(replayed.checksum).toBe(result.checksum)
        expect(replayed.events).toBe(result.counts.events)

        // The signals are what makes it: a replay without them diverges at the first one.
        const sql = yield* SqlClient.SqlClient
        yield* sql`update run_events set tag = 'Hidden' where run_id = ${run} and tag = 'SignalReceived'`
        const error = yield* Effect.flip(StoredRun.replay(run))
        expect(error).toMatchObject({ _tag: "RunDiverged", seq: first.seq })
      }), 60_000)

    it.effect("signals the run took and never applied are recorded at its end, before RunCompleted; the run replays byte for byte", () =>
      Effect.gen(function*() {
        // One waits for a bar of a symbol the data never has; one is left in the inbox at the end.
        const ghost = { ...signal("S0", "buy", 7), symbol: "S9" as Symbol }
        let first = true
        const options = stored(2, 120, {
          strategy: tradingViewStrategy("signals not applied"),
          mode: "paper",
          signals: () => (first ? ((first = false), [ghost]) : NONE),
          leftoverSignals: () => [signal("S1", "sell", 8)]
        })
        const { result, run } = yield* StoredRun.backtest(options)
        expect(result.status).toBe("completed")
        const events = yield* eventsOf(run)
        expect(events.at(-1)!.tag).toBe("RunCompleted")
        const notApplied = events.filter((e) => e.tag === "SignalNotApplied")
        expect(notApplied.map((e) => [e.event.signal.alertId, e.event.reason])).toEqual([
          ["id:alert-7", "the run ended before a bar of S9 could take it"],
          ["id:alert-8", "the run ended before a bar of S1 could take it"]
        ])
        expect(notApplied.map((e) => e.seq)).toEqual([events.length - 2, events.length - 1])
        expect(notApplied[0]!.event.ts).toBe(result.to)
        expect(events.some((e) => e.tag === "SignalReceived")).toBe(false)

        const replayed = yield* StoredRun.replay(run)
        expect(replayed.checksum).toBe(result.checksum)
        expect(replayed.events).toBe(result.counts.events)
      }), 60_000)

    it.effect("a paper run that fails early with signals waiting records them as not applied, as its last events", () =>
      Effect.gen(function*() {
        // Its first intent needs an operator and none is attached: the run fails at that slice,
        // with one signal held for a symbol the data never has and one left in its inbox.
        const ghost = { ...signal("S0", "buy", 7), symbol: "S9" as Symbol }
        let first = true
        const asked: Array<number> = []
        const options = stored(2, 120, {
          strategy: Schema.decodeUnknownSync(Strategy)({
            ...Schema.encodeSync(Strategy)(tradingViewStrategy("signals of a failed run")),
            risk: { approval: { policy: "pause", notionalPctAbove: 1, timeoutSeconds: 60 } }
          }),
          mode: "paper",
          signals: () => (first ? ((first = false), [signal("S0", "buy", 1), ghost]) : NONE),
          leftoverSignals: (events) => (asked.push(events), [signal("S1", "sell", 8)])
        })
        const { result, run } = yield* StoredRun.backtest(options)
        expect(result).toMatchObject({ status: "failed", failure: expect.stringMatching(/^risk\.approval\.policy: /) })
        expect((yield* Runs.get(run)).status).toBe("failed")
        const events = yield* eventsOf(run)
        expect(events.filter((e) => e.tag === "SignalReceived").map((e) => e.event.signal.alertId)).toEqual(["id:alert-1"])
        expect(events.some((e) => e.tag === "ApprovalRequested")).toBe(true)
        // Asked once, and both recorded as the run's last events before RunFailed, at the slice it failed in.
        expect(events.at(-1)!.tag).toBe("RunFailed")
        expect(asked).toEqual([events.length - 3])
        const notApplied = events.slice(-3, -1)
        expect(notApplied.map((e) => [e.tag, e.event.signal.alertId, e.event.reason])).toEqual([
          ["SignalNotApplied", "id:alert-7", "the run ended before a bar of S9 could take it"],
          ["SignalNotApplied", "id:alert-8", "the run ended before a bar of S1 could take it"]
        ])
        expect(notApplied[0]!.event.ts).toBe(events.find((e) => e.tag === "SignalReceived")!.event.ts)
      }), 60_000)

    it.effect("a crashed run resumes into the run it was; its live source joins only past the recorded part", () =>
      Effect.gen(function*() {
        const options = stored(2, 200, { strategy: tradingViewStrategy("signals resume"), mode: "paper", signals: scripted(), checkpointEvery: 32 })
        const original = yield* StoredRun.backtest(options)
        const events = yield* eventsOf(original.run)
        // Crash after the second slice with signals, mid-run.
        const cut = events.filter((e) => e.tag === "SignalReceived")[2]!.seq + 5
        const sql = yield* SqlClient.SqlClient
        for (const table of ["run_events", "opinions", "decisions", "verdicts", "orders", "fills", "trades", "equity_snapshots", "positions", "checkpoints"]) {
          yield* sql`delete from ${sql(table)} where run_id = ${original.run} and seq > ${cut}`
        }
        yield* sql`update runs set status = 'running', checksum = null, chain_count = null, chain_head = null, finished_at = null where id = ${original.run}`

        // The live source has an alert ready from the start: it must wait for the recorded part.
        const asked: Array<number> = []
        const late = signal("S1", "short", 5)
        let given = false
        const live = (_ts: Timestamp, events: number) => {
          asked.push(events)
          if (given) return NONE
          given = true
          return [late]
        }
        const resumed = yield* StoredRun.resume(original.run, { signals: live })
        expect(resumed.recorded).toBe(cut)
        expect(resumed.result.status).toBe("completed")
        expect(asked[0]!).toBeGreaterThanOrEqual(cut)
        const after = yield* eventsOf(original.run)
        // The recorded part is unchanged; the live alert follows it (the original's fourth alert, after the crash, is gone with it).
        expect(after.slice(0, cut).map((e) => e.event)).toEqual(events.slice(0, cut).map((e) => e.event))
        const received = after.filter((e) => e.tag === "SignalReceived").map((e) => e.event.signal.alertId)
        expect(received).toEqual(["id:alert-1", "id:alert-2", "id:alert-3", "id:alert-5"])
        expect((yield* Runs.get(original.run)).status).toBe("completed")
        // And the resumed run, live alert included, replays byte for byte.
        expect((yield* StoredRun.replay(original.run)).checksum).toBe(resumed.result.checksum)
      }), 60_000)
  })
}

// The driver alone, no database.
layer(backends[0]!.store, { timeout: startTimeout, excludeTestServices: true })("the driver's signals", (it) => {
  it.effect("the same signals give the same run; a signal waits for a bar of its symbol; none asked without a source", () =>
    Effect.gen(function*() {
      const base = stored(2, 120, { strategy: tradingViewStrategy("driver") })
      const a = yield* Backtest.run({ strategy: base.strategy, feed: base.feed, signals: scripted() })
      const b = yield* Backtest.run({ strategy: base.strategy, feed: base.feed, signals: scripted() })
      expect(a.checksum).toBe(b.checksum)
      const none = yield* Backtest.run({ strategy: base.strategy, feed: base.feed })
      expect(none.counts.orders).toBe(0)
      expect(a.counts.orders).toBeGreaterThan(0)

      // A symbol the slices do not have yet: held until they do (here: never, so never recorded).
      const seen: Array<string> = []
      const ghost = { ...signal("S0", "buy", 9), symbol: "S9" as Symbol }
      let first = true
      yield* Backtest.run({
        strategy: base.strategy,
        feed: base.feed,
        signals: () => (first ? ((first = false), [ghost]) : NONE),
        onEvent: (event) => void seen.push(event._tag)
      })
      expect(seen).not.toContain("SignalReceived")
    }), 60_000)

  it.effect("a run that cannot start its agents still says which signals it took and never applied", () =>
    Effect.gen(function*() {
      const base = stored(2, 120, { strategy: tradingViewStrategy("driver start-up") })
      const events: Array<{ readonly _tag: string; readonly signal?: ExternalSignal }> = []
      let asked = 0
      // No `tradingview` in the registry: the swarm fails to start right after RunStarted.
      const error = yield* Effect.flip(Backtest.run({
        strategy: base.strategy,
        feed: base.feed,
        registry: new Map(),
        signals: () => NONE,
        leftoverSignals: () => (asked++, [signal("S0", "buy", 1)]),
        onEvent: (event) => void events.push(event)
      }))
      expect(error._tag).toBe("InvalidAgent")
      expect(asked).toBe(1)
      expect(events.map((e) => [e._tag, e.signal?.alertId])).toEqual([["RunStarted", undefined], ["SignalNotApplied", "id:alert-1"]])
    }), 60_000)
})
