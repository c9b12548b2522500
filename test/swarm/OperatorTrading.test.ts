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
import * as RecordedTrading from "../../src/store/RecordedTrading.js"
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
      // The command first, as an input of the run; then what it did.
      const asked = ofTag(lifted.events, "TradingStateRequested")
      expect(asked).toMatchObject([{ ts: START + 16 * DAY, to: "active", actor: "alice", reason: "loss reviewed" }])
      expect(asked[0]!.seq).toBe(change.seq - 1)
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

  it.effect("the state machine's refusal is answered and changes nothing: the run is the one without the command, the command recorded", () =>
    Effect.gen(function*() {
      const plain = yield* operated({})
      const refused = yield* operated({ 3: [{ to: "active", actor: "alice", reason: "nothing to lift" }] })
      expect(refused.outcomes).toHaveLength(1)
      expect(refused.outcomes[0]![1]).toMatchObject({ _tag: "Refused", error: { _tag: "IllegalTransition", from: "active", to: "active" } })
      // Recorded, as every command is (an input of the run), and nothing else differs.
      expect(ofTag(refused.events, "TradingStateRequested")).toMatchObject([{ ts: START + 3 * DAY, to: "active", actor: "alice", reason: "nothing to lift" }])
      expect(refused.events.filter((e) => e._tag !== "TradingStateRequested").map((e) => e._tag)).toEqual(plain.events.map((e) => e._tag))
      expect(refused.result.metrics).toEqual(plain.result.metrics)
      // A command no edge checked (a blank reason) is refused the same way; it never fails the run.
      const blank = yield* operated({ 3: [{ to: "halted", actor: "alice", reason: "  " }] })
      expect(blank.outcomes[0]![1]).toMatchObject({ _tag: "Refused", error: { message: "a transition records why: the reason is empty" } })
      expect(blank.result.status).toBe("completed")
    }))

  it.effect("halts and reduces on an operator's word, in order, in a paper run too", () =>
    Effect.gen(function*() {
      const run = yield* operated({
        2: [{ to: "reducing", actor: "bob", reason: "earnings" }, { to: "halted", actor: "bob", reason: "news" }]
      }, { mode: "paper" })
      expect(moves(run.events).slice(0, 2)).toEqual([[2, "active", "reducing", "operator"], [2, "reducing", "halted", "operator"]])
      expect(run.outcomes.map(([bar, o]) => [bar, o._tag])).toEqual([[2, "Moved"], [2, "Moved"]])
    }))

  it.effect("a run held at a slice (paused) takes commands there as they come: the run is the one that took them at that slice, line for line", () =>
    Effect.gen(function*() {
      const commands = [{ to: "reducing", actor: "bob", reason: "looking" }, { to: "halted", actor: "bob", reason: "something is wrong" }] as const
      const taken = yield* operated({ 5: commands }, { mode: "paper" })
      // Held at bar 5 (after its commands, none here) until the commands come, one at a time, then let go.
      const waits = [[commands[0]], [commands[1]], []]
      const heldAt: Array<number> = []
      const outcomes: Array<Backtest.TradingOutcome> = []
      const held = yield* operated({}, {
        mode: "paper",
        hold: (ts) => {
          if (dayOf(ts) !== 5 || waits.length === 0) return undefined
          heldAt.push(dayOf(ts))
          return Effect.succeed(waits.shift()!.map((command) => ({ ...command, answer: (outcome: Backtest.TradingOutcome) => void outcomes.push(outcome) })))
        }
      })
      expect(heldAt).toEqual([5, 5, 5])
      expect(outcomes.map((o) => o._tag)).toEqual(["Moved", "Moved"])
      expect(outcomes).toEqual(taken.outcomes.map(([, o]) => o))
      expect(held.lines).toEqual(taken.lines)
      expect(held.result.checksum).toBe(taken.result.checksum)
    }))

  it.effect("a risk officer that crashes on the command answers nothing: the command fails closed, nothing moves, and the run goes on", () =>
    Effect.gen(function*() {
      // The officer crashes on the operator's message itself (its supervisor restarts it).
      const faults = { risk: (message: unknown) => (message as { _tag?: string })._tag === "SetTradingState" }
      const lift = { 16: [{ to: "active" as const, actor: "alice", reason: "loss reviewed" }] }
      const down = yield* operated(lift, { faults })
      expect(down.outcomes).toHaveLength(1)
      expect(down.outcomes[0]![1]).toMatchObject({ _tag: "Down", reason: expect.stringContaining("did not answer") })
      // Still halted: the sale on bar 18 is refused, as in a run with no command.
      expect(moves(down.events)).toEqual([[CROSSED, "active", "halted", "drawdown_halt"]])
      expect(down.result.tradingState).toBe("halted")
      expect(down.result.counts.orders).toBe(1)
      // The crash is in the run's events, after the recorded command: given the command back, a
      // re-execution reproduces it.
      const crashed = down.events.findIndex((e) => e._tag === "DeadLetterRecorded" && e.message === "SetTradingState")
      expect(down.events[crashed - 1]!._tag).toBe("TradingStateRequested")
      expect((yield* operated(lift, { faults })).lines).toEqual(down.lines)
    }))

  it.effect("is not taken while the coordinator's halt stands over a risk officer that did not answer: fail closed, said so", () =>
    Effect.gen(function*() {
      // The officer crashes on its first judgement (bar 0's buy): the coordinator halts the run
      // over it until the officer answers a judgement again — here, never (no decision after).
      const faults = { risk: (message: unknown) => (message as { _tag?: string })._tag === "Judge" }
      const run = yield* operated({ 3: [{ to: "reducing", actor: "alice", reason: "careful" }] }, { faults })
      expect(moves(run.events)[0]).toEqual([0, "active", "halted", "system"])
      expect(run.outcomes.map(([bar, o]) => [bar, o._tag])).toEqual([[3, "Down"]])
      expect(run.outcomes[0]![1]).toMatchObject({ reason: expect.stringContaining("halted while its risk officer is down") })
      expect(moves(run.events).filter(([, , , cause]) => cause === "operator")).toEqual([])
    }))

  it.effect("a run waiting for an operator's answer takes a command at once: a halt or a reduce refuses the held intent there, and a re-execution given the command back reproduces it", () =>
    Effect.gen(function*() {
      // Every buy is above 5% of equity: bar 0's waits for an operator, who never answers.
      const guarded = Schema.decodeUnknownSync(Strategy)({
        ...Schema.encodeSync(Strategy)(strategy),
        risk: { approval: { notionalPctAbove: 5, policy: "pause", timeoutSeconds: 60 } }
      })
      const run = (to: "halted" | "reducing", waiting: (outcomes: Array<Backtest.TradingOutcome>) => Backtest.Options["waiting"]) => {
        const outcomes: Array<Backtest.TradingOutcome> = []
        return Effect.map(
          record({
            strategy: guarded,
            feed: Feed.fromBars(new Map([[bars[0]!.symbol, bars]]), { fingerprint: "test:operator" }),
            registry: registryOf({ AAA: script }),
            approver: () => Effect.never,
            waiting: waiting(outcomes)
          }),
          (recorded) => ({ ...recorded, outcomes, to })
        )
      }
      /** The command comes once the run waits (its arrival told), not before. */
      const live = (to: "halted" | "reducing") => (outcomes: Array<Backtest.TradingOutcome>): Backtest.Options["waiting"] => {
        let came = false
        let given = false
        return {
          take: () => {
            if (!came || given) return []
            given = true
            return [{ to, actor: "alice", reason: "not now", answer: (outcome) => void outcomes.push(outcome) }]
          },
          arrival: Effect.sync(() => {
            came = true
          })
        }
      }
      for (const to of ["halted", "reducing"] as const) {
        const taken = yield* run(to, live(to))
        expect(taken.outcomes.map((o) => o._tag)).toEqual(["Moved"])
        const [asked] = ofTag(taken.events, "ApprovalRequested")
        const [requested] = ofTag(taken.events, "TradingStateRequested")
        expect(requested).toMatchObject({ ts: START, to, actor: "alice", reason: "not now", waiting: true })
        expect(requested!.seq).toBeGreaterThan(asked!.seq)
        expect(taken.events[requested!.seq]).toMatchObject({ _tag: "TradingStateChanged", transition: { from: "active", to, cause: "operator" } })
        // Refused right after the change, by the operator who moved the state, saying why.
        expect(taken.events[requested!.seq + 1]).toMatchObject({ _tag: "ApprovalResolved", round: asked!.round, outcome: "rejected", by: "alice" })
        expect((taken.events[requested!.seq + 1] as { reason: string }).reason).toMatch(to === "halted" ? /went halted/ : /went reduce-only/)
        // The run went on (the operator never answered), and nothing was bought.
        expect(taken.result.status).toBe("completed")
        expect(taken.result.counts.orders).toBe(0)
        // The command is an input: given back at its event, with nobody there, the run is the same, line for line.
        const recorded = new Map([[requested!.seq, { to, actor: "alice", reason: "not now" }]])
        const again = yield* run(to, () => RecordedTrading.waitingSource(recorded, undefined))
        expect(again.lines).toEqual(taken.lines)
      }
    }))
})
