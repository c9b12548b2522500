/**
 * Recorded runs and an operator's trading-state command (`runs.trading`): the command is an input of
 * the run, recorded where it was taken (its `TradingStateChanged`, cause `operator`), and a replay
 * gives it back at the same slice (src/store/RecordedTrading.ts): the run that an operator lifted
 * out of a halt replays byte for byte. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import type * as Backtest from "../../src/swarm/Backtest.js"
import * as Runs from "../../src/store/Runs.js"
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
const CLOSES = [100, 100, 40, 40, 40, 40, 40, 40, 40, 40]
const LIFTED = 3
const registry = registryOf({ AAA: ["long", "long", "long", "long", "flat"] })
const strategy = Schema.decodeUnknownSync(Strategy)({
  name: "operated",
  symbols: ["AAA"],
  initialCash: "100000",
  allowShort: false,
  agents: [{ type: "test_script" }],
  sizing: { mode: "percent_of_equity", value: 50 },
  execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }
})

const csvData = Recordings.csvData("operator-trading", [series("AAA", CLOSES)])

/**
 * Right before bar `LIFTED`, once: an operator halts the run (refused: the drawdown halted it
 * already), then another lifts the halt.
 */
const liftOnce = (): Backtest.Options["trading"] => {
  let given = false
  return (ts) => {
    if (given || ts !== START + LIFTED * DAY) return []
    given = true
    return [{ to: "halted", actor: "bob", reason: "to be sure" }, { to: "active", actor: "alice", reason: "loss reviewed" }]
  }
}

const moves = (events: ReadonlyArray<RunEvent>) =>
  events.flatMap((e) => (e._tag === "TradingStateChanged" ? [[Math.round((e.transition.at - START) / DAY), e.transition.to, e.transition.cause] as const] : []))

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`an operator's trading-state command and recorded runs (${backend.name})`, (it) => {
    describe("a run whose halt an operator lifted", () => {
      it.effect("replays byte for byte: each command, the refused one too, given back at the slice it was taken at", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* csvData
          const events: Array<RunEvent> = []
          const { result, run } = yield* StoredRun.backtest({
            strategy,
            feed,
            dataSource: source,
            registry,
            mode: "paper",
            trading: liftOnce(),
            onEvent: (event) => void events.push(event)
          })
          expect(moves(events)).toEqual([[2, "halted", "drawdown_halt"], [LIFTED, "active", "operator"]])
          expect(events.filter((e) => e._tag === "TradingStateRequested").map((e) => e._tag === "TradingStateRequested" && [e.to, e.actor])).toEqual([
            ["halted", "bob"],
            ["active", "alice"]
          ])
          // The sale the halt refused goes through once it is lifted.
          expect(result.tradingState).toBe("active")
          expect(result.counts.orders).toBe(2)
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.status).toBe("completed")
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
        }).pipe(Effect.scoped))

      it.effect("resumes after a crash into the run it was: the recorded commands given back, a live one taken only past the recorded part", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* csvData
          const events: Array<RunEvent> = []
          const original = yield* StoredRun.backtest({
            strategy,
            feed,
            dataSource: source,
            registry,
            mode: "paper",
            trading: liftOnce(),
            onEvent: (event) => void events.push(event)
          })
          // Crash after the slice of the lift, mid-run.
          const lift = events.find((e) => e._tag === "TradingStateChanged" && e.transition.cause === "operator")!
          const cut = Math.max(...events.filter((e) => e.at <= lift.at).map((e) => e.seq))
          expect(cut).toBeLessThan(events.length - 5)
          const sql = yield* SqlClient.SqlClient
          for (const table of ["run_events", "opinions", "decisions", "verdicts", "orders", "fills", "trades", "equity_snapshots", "positions", "reasoning", "checkpoints"]) {
            yield* sql`delete from ${sql(table)} where run_id = ${original.run} and seq > ${cut}`
          }
          yield* sql`delete from rounds r where run_id = ${original.run}
            and not exists (select 1 from opinions o where o.run_id = r.run_id and o.round_id = r.round_id)
            and not exists (select 1 from decisions d where d.run_id = r.run_id and d.round_id = r.round_id)`
          yield* sql`update runs set status = 'running', checksum = null, chain_count = null, chain_head = null, finished_at = null where id = ${original.run}`

          // An operator's halt is waiting from the start: it must not land inside the recorded part.
          const asked: Array<number> = []
          let given = false
          const live: Backtest.Options["trading"] = (_ts, logged) => {
            asked.push(logged)
            if (given) return []
            given = true
            return [{ to: "halted", actor: "carol", reason: "after the restart" }]
          }
          const resumed = yield* StoredRun.resume(original.run, { registry, trading: live })
          expect(resumed.recorded).toBe(cut)
          expect(resumed.result.status).toBe("completed")
          expect(asked[0]!).toBeGreaterThanOrEqual(cut)
          const requested = (yield* Runs.events(original.run, 0, 10_000, ["TradingStateRequested"])).map((row) => {
            const e = JSON.parse(row.body) as { actor: string; to: string }
            return [e.actor, e.to, Number(row.seq) > cut]
          })
          expect(requested).toEqual([["bob", "halted", false], ["alice", "active", false], ["carol", "halted", true]])
          expect(resumed.result.tradingState).toBe("halted")
          // And the resumed run, the live command included, replays byte for byte.
          expect((yield* StoredRun.replay(original.run, { registry })).checksum).toBe(resumed.result.checksum)
        }).pipe(Effect.scoped))
    })
  })
}
