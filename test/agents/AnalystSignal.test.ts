/**
 * A model's signal that breaks the contract of agents/analysts/Model.ts (a confidence outside 0..1
 * or not a number, a direction that is none, a short where shorting is off, a feature that is not
 * finite) crashes its analyst, naming the model, the fault and the bar: it never reaches a vote,
 * and every event of the run still decodes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { signalFault } from "../../agents/Analyst.js"
import type { AnyModel, Model, Signal } from "../../agents/analysts/Model.js"
import * as SmaCrossover from "../../agents/analysts/SmaCrossover.js"
import { analysts } from "../../agents/registry.js"
import { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"

const signal = (direction: string, confidence: unknown, features: Record<string, unknown> = { x: 1 }) =>
  ({ direction, confidence, features }) as unknown as Signal

describe("signalFault", () => {
  it("passes a signal that keeps the contract", () => {
    for (const confidence of [0, 0.5, 1]) expect(signalFault(signal("long", confidence), false)).toBeUndefined()
    expect(signalFault(signal("short", 1), true)).toBeUndefined()
    expect(signalFault(signal("flat", 0, {}), false)).toBeUndefined()
  })

  it("names what is wrong", () => {
    expect(signalFault(signal("long", 1.5), true)).toBe("confidence 1.5; a confidence is a number from 0 to 1")
    expect(signalFault(signal("long", -0.5), true)).toMatch(/^confidence -0.5;/)
    expect(signalFault(signal("long", Number.NaN), true)).toMatch(/^confidence NaN;/)
    expect(signalFault(signal("long", "0.5"), true)).toMatch(/^confidence 0.5;/)
    expect(signalFault(signal("up", 0.5), true)).toBe("direction \"up\", which is none of long, short and flat")
    expect(signalFault(signal("short", 0.5), false)).toMatch(/^a short while the strategy does not allow shorting/)
    expect(signalFault(signal("long", 0.5, { sma: Number.POSITIVE_INFINITY }), true)).toBe("feature sma = Infinity; a feature is a finite number")
    expect(signalFault(signal("long", 0.5, { sma: Number.NaN }), true)).toMatch(/^feature sma = NaN/)
  })
})

describe("an analyst whose model breaks the contract", () => {
  /** SMA crossover whose signal on every 50th bar it folds is `bad` (counted across restarts). */
  const lying = (bad: (s: Signal) => Signal): AnyModel => {
    let bars = 0
    const sma: Model<any, any, any> = SmaCrossover.model
    return {
      ...sma,
      type: "lying",
      update: (state, bar, config, allowShort) => {
        const given = sma.update(state, bar, config, allowShort)
        return given !== undefined && ++bars % 50 === 0 ? bad(given) : given
      }
    }
  }
  const faults: ReadonlyArray<readonly [string, (s: Signal) => Signal, RegExp]> = [
    ["a confidence above 1", (s) => ({ ...s, confidence: 1.5 }), /lying gave confidence 1\.5; a confidence is a number from 0 to 1 for AAA at \d{4}-/],
    ["a negative confidence", (s) => ({ ...s, confidence: -0.5 }), /lying gave confidence -0\.5;/],
    ["a confidence that is NaN", (s) => ({ ...s, confidence: Number.NaN }), /lying gave confidence NaN;/],
    ["a short with shorting off", (s) => ({ ...s, direction: "short" }), /lying gave a short while the strategy does not allow shorting/]
  ]
  for (const [what, bad, said] of faults) {
    it.effect(`crashes on ${what}, says so, and its signal reaches no vote`, () =>
      Effect.gen(function*() {
        const events: Array<string> = []
        const result = yield* Backtest.run({
          strategy: Schema.decodeUnknownSync(Strategy)({
            name: "lying",
            symbols: ["AAA"],
            agents: [{ type: "lying", params: { fast: 5, slow: 20 } }, { type: "ema_crossover", params: { fast: 5, slow: 20 } }]
          }),
          feed: Feed.synthetic({ ...Synthetic.defaults, seed: 3, symbols: ["AAA"] as never, bars: 200 }),
          registry: new Map([...analysts, ["lying", lying(bad)]]),
          onEvent: (_, json) => events.push(json)
        })
        expect(result.status).toBe("completed")
        const decoded = events.map((line) => Schema.decodeUnknownSync(RunEvent)(JSON.parse(line)))
        const crashes = decoded.flatMap((e) => (e._tag === "AgentLifecycle" && e.event._tag === "ActorCrashed" && e.event.actor.endsWith("/lying") ? [e.event] : []))
        expect(crashes.length).toBeGreaterThan(0)
        expect(crashes[0]!.cause).toMatch(said)
        for (const e of decoded) {
          if (e._tag !== "DecisionMade") continue
          expect(e.decision.confidence).toBeGreaterThanOrEqual(0)
          expect(e.decision.confidence).toBeLessThanOrEqual(1)
        }
      }))
  }
})
