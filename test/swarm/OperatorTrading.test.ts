/**
 * An operator's trading-state command in a whole run (`Backtest.Options.trading`): taken right
 * before a slice, carried out by the risk officer at that slice's time, its `TradingStateChanged`
 * (cause `operator`) recorded before the slice's own events. A halt is lifted only so.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import type * as Backtest from "../../src/swarm/Backtest.js"
import { ofTag, record, registryOf } from "./recorded.js"

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)
const dayOf = (ts: number) => Math.round((ts - START) / DAY)

const series = (symbol: string, closes: ReadonlyArray<number>): Array<Bar> =>
  closes.map((close, i) => {
    const open = i === 0 ? close : closes[i - 1]!
    return { symbol: symbol as Bar["symbol"], ts: (START + i * DAY) as Bar["ts"], open, high: Math.max(open, close), low: Math.min(open, close), close, volume: 1_000 }
  })

const strategy = Schema.decodeUnknownSync(Strategy)({
  name: "operated",
  symbols: ["AAA"],
  initialCash: "100000",
  allowShort: false,
  agents: [{ type: "test_script" }],
  sizing: { mode: "percent_of_equity", value: 50 },
  execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }
})

/** Bought on bar 0, halted by the drawdown on bar 14 (as in Breakers.test.ts); the script says flat on bar 18. */
const FALLING = [100, 100, 96, 92, 88, 84, 80, 76, 72, 68, 64, 60, 56, 52, 48, 48, 48, 47, 47, 47, 47]
const CROSSED = 14
const FLAT_AT = 18
const bars = series("AAA", FALLING)
const script = [...Array.from({ length: FLAT_AT }, () => "long" as const), "flat" as const]

/** Commands by bar: each given to the run once, right before that bar's slice; their outcomes kept. */
const operated = (byBar: Readonly<Record<number, ReadonlyArray<Omit<Backtest.TradingCommand, "answer">>>>, options: Partial<Backtest.Options> = {}) => {
  const outcomes: Array<[number, Backtest.TradingOutcome]> = []
  const given = new Set<number>()
  const trading = (ts: number) => {
    const bar = dayOf(ts)
    if (given.has(bar)) return []
    given.add(bar)
    return (byBar[bar] ?? []).map((command) => ({ ...command, answer: (outcome: Backtest.TradingOutcome) => void outcomes.push([bar, outcome]) }))
  }
  return Effect.map(
    record({
      strategy,
      feed: Feed.fromBars(new Map([[bars[0]!.symbol, bars]]), { fingerprint: "test:operator" }),
      registry: registryOf({ AAA: script }),
      trading,
      ...options
    }),
    (recorded) => ({ ...recorded, outcomes })
  )
}

const moves = (events: ReadonlyArray<RunEvent>) =>
  ofTag(events, "TradingStateChanged").map((e) => [dayOf(e.transition.at), e.transition.from, e.transition.to, e.transition.cause] as const)

describe("an operator's trading-state command in a run", () => {
  it.effect("lifts a drawdown halt at the slice it is taken on, and the sale the halt refused goes through", () =>
    Effect.gen(function*() {
      const halted = yield* operated({})
      expect(moves(halted.events)).toEqual([[CROSSED, "active", "halted", "drawdown_halt"]])
      expect(halted.result.tradingState).toBe("halted")

      const lifted = yield* operated({ 16: [{ to: "active", actor: "alice", reason: "loss reviewed" }] })
      expect(moves(lifted.events)).toEqual([[CROSSED, "active", "halted", "drawdown_halt"], [16, "halted", "active", "operator"]])
      const change = ofTag(lifted.events, "TradingStateChanged")[1]!
      expect(change.transition).toEqual({ from: "halted", to: "active", cause: "operator", at: START + 16 * DAY, reason: "loss reviewed", actor: "alice" })
      // Recorded before the slice's own events.
      const index = lifted.events.indexOf(change)
      expect(lifted.events.slice(index + 1).every((e) => !("ts" in e) || (e as { ts: number }).ts >= START + 16 * DAY)).toBe(true)
      expect(lifted.outcomes).toEqual([[16, { _tag: "Moved", status: expect.objectContaining({ state: "active", actor: "alice" }), transition: change.transition }]])
      // Trading goes on: the sale on bar 18 passes, and fills.
      const sale = ofTag(lifted.events, "VerdictGiven").find((v) => dayOf(v.verdict.intent.ts) === FLAT_AT)!.verdict
      expect(sale).toMatchObject({ outcome: "approved", state: "active" })
      expect(lifted.result.counts.orders).toBe(2)
      expect(lifted.result.tradingState).toBe("active")
    }))

  it.effect("the state machine's refusal is answered and changes nothing: the run is the one without the command", () =>
    Effect.gen(function*() {
      const plain = yield* operated({})
      const refused = yield* operated({ 3: [{ to: "active", actor: "alice", reason: "nothing to lift" }] })
      expect(refused.outcomes).toHaveLength(1)
      expect(refused.outcomes[0]![1]).toMatchObject({ _tag: "Refused", error: { _tag: "IllegalTransition", from: "active", to: "active" } })
      expect(refused.lines).toEqual(plain.lines)
    }))

  it.effect("halts and reduces on an operator's word, in order, in a paper run too", () =>
    Effect.gen(function*() {
      const run = yield* operated({
        2: [{ to: "reducing", actor: "bob", reason: "earnings" }, { to: "halted", actor: "bob", reason: "news" }]
      }, { mode: "paper" })
      expect(moves(run.events).slice(0, 2)).toEqual([[2, "active", "reducing", "operator"], [2, "reducing", "halted", "operator"]])
      expect(run.outcomes.map(([bar, o]) => [bar, o._tag])).toEqual([[2, "Moved"], [2, "Moved"]])
    }))
})
