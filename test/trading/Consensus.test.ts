import { describe, expect, it } from "@effect/vitest"
import { FastCheck, Schema } from "effect"
import { ConsensusConfig } from "../../schemas/Decision.js"
import type { AgentId, RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Direction, Opinion } from "../../schemas/Opinion.js"
import {
  actionOf,
  adaptiveWeight,
  aggregate,
  initialAccuracy,
  isCorrect,
  type Member,
  updateAccuracy
} from "../../src/trading/Consensus.js"

const config = (overrides: object = {}) => Schema.decodeUnknownSync(ConsensusConfig)(overrides)
const agent = (name: string) => name as AgentId
const opinion = (name: string, direction: Direction, confidence: number): Opinion => ({
  round: "AAPL@0" as RoundId,
  agent: agent(name),
  symbol: "AAPL" as Symbol,
  ts: 0 as Timestamp,
  direction,
  confidence,
  horizon: 1,
  rationale: "",
  features: {}
})
const round = (roster: ReadonlyArray<Member>, opinions: ReadonlyArray<Opinion>, failed: ReadonlyArray<string> = []) => ({
  round: "AAPL@0" as RoundId,
  symbol: "AAPL" as Symbol,
  ts: 0 as Timestamp,
  roster,
  opinions: new Map(opinions.map((o) => [o.agent, o])),
  failed: new Set(failed.map(agent))
})
const members = (...weights: ReadonlyArray<readonly [string, number]>): Array<Member> =>
  weights.map(([name, weight]) => ({ agent: agent(name), weight }))

describe("consensus", () => {
  it("a unanimous roster decides its direction with its weighted confidence", () => {
    const decision = aggregate(
      round(members(["a", 1], ["b", 1]), [opinion("a", "long", 0.8), opinion("b", "long", 0.6)]),
      config()
    )
    expect(decision).toMatchObject({ action: "long", quorumMet: true, participation: 1, dissent: [], disagreement: 0 })
    expect(decision.confidence).toBeCloseTo(0.7, 12) // (1×0.8 + 1×0.6) ÷ 2
  })

  it("with one analyst the decision is that analyst's opinion", () => {
    for (const [direction, confidence] of [["long", 0.9], ["short", 0.35], ["flat", 1]] as const) {
      const decision = aggregate(round(members(["solo", 3]), [opinion("solo", direction, confidence)]), config())
      expect(decision.action).toBe(direction)
      expect(decision.confidence).toBe(confidence)
    }
  })

  it("records dissent: the heavier side wins and the others are named with the disagreement", () => {
    const decision = aggregate(
      round(members(["a", 2], ["b", 1], ["c", 1]), [
        opinion("a", "short", 0.9), // 1.8
        opinion("b", "long", 0.8), //  0.8
        opinion("c", "long", 0.5) //   0.5
      ]),
      config()
    )
    expect(decision.action).toBe("short")
    expect(decision.dissent).toEqual(["b", "c"])
    expect(decision.disagreement).toBeCloseTo(1.3 / 3.1, 12)
    expect(decision.confidence).toBeCloseTo(1.8 / 4, 12)
    expect(decision.votes.map((v) => [v.agent, v.score])).toEqual([["a", 1.8], ["b", 0.8], ["c", 0.5]])
  })

  it("without a quorum of weight the action is hold, and every abstention says why", () => {
    const decision = aggregate(
      round(
        members(["a", 1], ["b", 1], ["c", 1], ["d", 1]),
        [opinion("a", "long", 0.9), opinion("b", "long", 0.1)],
        ["c"]
      ),
      config({ quorum: 0.5, minConfidence: 0.2 })
    )
    expect(decision.quorumMet).toBe(false)
    expect(decision.action).toBe("hold")
    expect(decision.participation).toBe(0.25)
    expect(decision.abstentions).toEqual([
      { agent: "b", reason: "below_min_confidence" },
      { agent: "c", reason: "failed" },
      { agent: "d", reason: "no_answer" }
    ])
  })

  it("the quorum counts weight, not heads", () => {
    const opinions = [opinion("heavy", "long", 0.7)]
    expect(aggregate(round(members(["heavy", 3], ["x", 1], ["y", 1]), opinions), config({ quorum: 0.6 })).action).toBe("long")
    expect(aggregate(round(members(["heavy", 1], ["x", 1], ["y", 1]), opinions), config({ quorum: 0.6 })).action).toBe("hold")
  })

  it("an exact quorum is met despite floating-point sums (1/3 + 1/6 of the weight is 0.5)", () => {
    const decision = aggregate(
      round(members(["a", 1 / 3], ["b", 1 / 6], ["c", 1 / 2]), [opinion("a", "long", 1), opinion("b", "long", 1)]),
      config({ quorum: 0.5 })
    )
    expect(decision.quorumMet).toBe(true)
  })

  it("a tie for the top score is flat; a weak consensus below the decision minimum is hold", () => {
    const tie = aggregate(round(members(["a", 1], ["b", 1]), [opinion("a", "long", 0.6), opinion("b", "short", 0.6)]), config())
    expect(tie.action).toBe("flat")
    const weak = aggregate(round(members(["a", 1]), [opinion("a", "long", 0.3)]), config({ minDecisionConfidence: 0.5 }))
    expect(weak.action).toBe("hold")
  })

  it("nobody answering is a hold with zero confidence, never NaN", () => {
    const decision = aggregate(round(members(["a", 1], ["b", 0]), []), config())
    expect(decision).toMatchObject({ action: "hold", confidence: 0, participation: 0, disagreement: 0, quorumMet: false })
    const empty = aggregate(round([], []), config())
    expect(empty).toMatchObject({ action: "hold", confidence: 0, participation: 0 })
  })

  it("an observer (weight 0) is recorded but never counted: alone it makes no quorum, even a quorum of 0", () => {
    const roster = members(["sma", 1], ["observer", 0])
    for (const quorum of [0, 0.5]) {
      const alone = aggregate(round(roster, [opinion("observer", "long", 0.84)]), config({ quorum }))
      expect(alone).toMatchObject({ action: "hold", confidence: 0, participation: 0, quorumMet: false })
      expect(alone.votes).toEqual([{ agent: "observer", direction: "long", confidence: 0.84, weight: 0, score: 0 }])
      expect(actionOf(round(roster, [opinion("observer", "long", 0.84)]), config({ quorum }))).toBe("hold")
    }
    // Beside a counted vote, the observer does not make it "one of two": the decision is the counted one's.
    const both = aggregate(round(roster, [opinion("sma", "short", 0.3), opinion("observer", "long", 0.84)]), config({ quorum: 0 }))
    expect(both).toMatchObject({ action: "short", confidence: 0.3, participation: 1, quorumMet: true })
    expect(both.votes.map((v) => v.agent)).toEqual(["sma", "observer"])
  })

  it("the order answers arrived in does not change the decision (sums follow the roster)", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(
          FastCheck.record({
            direction: FastCheck.constantFrom<Direction>("long", "short", "flat"),
            confidence: FastCheck.double({ min: 0, max: 1, noNaN: true }),
            weight: FastCheck.double({ min: 0, max: 10, noNaN: true })
          }),
          { minLength: 1, maxLength: 8 }
        ),
        (entries) => {
          const roster = entries.map((e, i) => ({ agent: agent(`a${i}`), weight: e.weight }))
          const opinions = entries.map((e, i) => opinion(`a${i}`, e.direction, e.confidence))
          const forward = aggregate(round(roster, opinions), config())
          const backward = aggregate(round(roster, [...opinions].reverse()), config())
          expect(backward).toEqual(forward)
          for (const value of [forward.confidence, forward.participation, forward.disagreement]) {
            expect(Number.isFinite(value) && value >= 0 && value <= 1).toBe(true)
          }
        }
      )
    )
  })

  it("bad consensus settings are typed decode errors naming the field", () => {
    expect(() => config({ quorum: 1.5 })).toThrow(/quorum/)
    expect(() => config({ minConfidence: "high" })).toThrow(/minConfidence/)
    expect(() => config({ adaptiveWeights: { alpha: -1 } })).toThrow(/alpha/)
  })
})

describe("adaptive weights", () => {
  it("an opinion is scored against the realised return with a flat band", () => {
    expect(isCorrect("long", 0.02, 0.001)).toBe(true)
    expect(isCorrect("long", 0.0005, 0.001)).toBe(false)
    expect(isCorrect("short", -0.02, 0.001)).toBe(true)
    expect(isCorrect("flat", 0.0005, 0.001)).toBe(true)
    expect(isCorrect("flat", -0.01, 0.001)).toBe(false)
    // A run that may not short: flat is "not long", right unless the price rose by more than the band.
    expect(isCorrect("flat", -0.01, 0.001, true)).toBe(true)
    expect(isCorrect("flat", 0.0005, 0.001, true)).toBe(true)
    expect(isCorrect("flat", 0.01, 0.001, true)).toBe(false)
    expect(isCorrect("long", 0.01, 0.001, true)).toBe(true)
    expect(isCorrect("short", 0.01, 0.001, true)).toBe(false)
  })

  it("accurate analysts gain weight and inaccurate ones lose it, within the floor and ceiling", () => {
    const settings = config({ adaptiveWeights: { enabled: true, alpha: 0.5, floor: 0.25, ceiling: 2 } }).adaptiveWeights
    expect(adaptiveWeight(1, initialAccuracy, settings)).toBe(1)
    let good = initialAccuracy
    let bad = initialAccuracy
    for (let i = 0; i < 20; i++) {
      good = updateAccuracy(good, true, settings.alpha)
      bad = updateAccuracy(bad, false, settings.alpha)
    }
    expect(adaptiveWeight(2, good, settings)).toBeCloseTo(4, 5) // 2 × min(2, 2·~1)
    expect(adaptiveWeight(2, bad, settings)).toBe(0.5) //           2 × floor 0.25
    expect(good.scored).toBe(20)
    const off = config().adaptiveWeights
    expect(adaptiveWeight(2, bad, off)).toBe(2)
  })

  it.prop(
    "actionOf decides exactly as aggregate, for any roster, answers and settings",
    {
      answers: FastCheck.array(
        FastCheck.record({
          weight: FastCheck.double({ min: 0, max: 5, noNaN: true }),
          answer: FastCheck.oneof(
            FastCheck.constant<"none" | "failed">("none"),
            FastCheck.constant<"none" | "failed">("failed"),
            FastCheck.record({
              direction: FastCheck.constantFrom<Direction>("long", "short", "flat"),
              confidence: FastCheck.double({ min: 0, max: 1, noNaN: true })
            })
          )
        }),
        { maxLength: 8 }
      ),
      settings: FastCheck.record({
        minConfidence: FastCheck.double({ min: 0, max: 1, noNaN: true }),
        quorum: FastCheck.double({ min: 0, max: 1, noNaN: true }),
        minDecisionConfidence: FastCheck.double({ min: 0, max: 1, noNaN: true })
      })
    },
    ({ answers, settings }) => {
      const roster = members(...answers.map((a, i) => [`a${i}`, a.weight] as const))
      const opinions = answers.flatMap((a, i) => (typeof a.answer === "string" ? [] : [opinion(`a${i}`, a.answer.direction, a.answer.confidence)]))
      const failed = answers.flatMap((a, i) => (a.answer === "failed" ? [`a${i}`] : []))
      const input = round(roster, opinions, failed)
      expect(actionOf(input, config(settings))).toBe(aggregate(input, config(settings)).action)
    }
  )
})
