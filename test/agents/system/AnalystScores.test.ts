/**
 * The `analyst_scores` tool's pure core (agents/system/AnalystScores.ts): each analyst's opinions,
 * votes, abstentions, dissent and hit rate over a run's recorded decisions, and the sentences an
 * operator reads without a model.
 */
import { describe, expect, it } from "vitest"
import { type AnalystScoresInput, analystScores, describeAnalystScores, MIN_SCORED, type OpinionRow } from "../../../agents/system/AnalystScores.js"
import type { Abstention, Action, Decision, Vote } from "../../../schemas/Decision.js"
import type { Direction } from "../../../schemas/Opinion.js"

const DAY = 86_400_000
const T0 = Date.UTC(2024, 0, 1)

/** Closes by symbol, one a day from T0: `returnAfter` reads them as the tool reads the run's bars. */
const CLOSES: Record<string, ReadonlyArray<number>> = {
  // Up 10 % a day: long is right, short and flat are wrong.
  UP: [100, 110, 121, 133.1, 146.41, 161.051, 177.1561, 194.87171, 214.358881, 235.7947691, 259.37424601, 285.311670611],
  // Flat: flat is right, long and short are wrong.
  FLAT: [50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50],
  // Down 10 % a day.
  DOWN: [100, 90, 81, 72.9]
}

const returnAfter = (symbol: string, ts: number, horizon: number): number | undefined => {
  const closes = CLOSES[symbol]!
  const i = (ts - T0) / DAY
  return Number.isInteger(i) && i + horizon < closes.length ? closes[i + horizon]! / closes[i]! - 1 : undefined
}

interface Call {
  readonly agent: string
  readonly direction: Direction
  readonly confidence: number
  /** Below the minimum confidence: an abstention, on the record as an opinion. */
  readonly abstain?: boolean
}

/** A round of `symbol` on day `day` with the calls given; agents not called are `absent` (no answer, or failed). */
const round = (symbol: string, day: number, action: Action, calls: ReadonlyArray<Call>, absent: ReadonlyArray<readonly [string, Abstention["reason"]]> = []) => {
  const id = `${symbol}@${T0 + day * DAY}`
  const votes: Array<Vote> = calls.filter((c) => c.abstain !== true).map((c) => ({
    agent: c.agent as Vote["agent"],
    direction: c.direction,
    confidence: c.confidence,
    weight: 1,
    score: c.confidence
  }))
  const winner = action === "hold" ? "flat" : action
  const decision: Decision = {
    round: id as Decision["round"],
    symbol: symbol as Decision["symbol"],
    ts: (T0 + day * DAY) as Decision["ts"],
    action,
    confidence: 0.6,
    votes,
    abstentions: [
      ...calls.filter((c) => c.abstain === true).map((c) => ({ agent: c.agent as Vote["agent"], reason: "below_min_confidence" as const })),
      ...absent.map(([agent, reason]) => ({ agent: agent as Vote["agent"], reason }))
    ],
    dissent: votes.filter((v) => v.direction !== winner).map((v) => v.agent),
    disagreement: 0,
    participation: 1,
    quorumMet: true
  }
  const opinions: Array<OpinionRow> = calls.map((c) => ({ round: id, agent: c.agent, direction: c.direction, confidence: c.confidence }))
  return { decision, opinions }
}

const input = (rounds: ReadonlyArray<ReturnType<typeof round>>, extra: Partial<AnalystScoresInput> = {}): AnalystScoresInput => ({
  roster: ["trend", "contrarian", "sleepy", "idle"],
  opinions: rounds.flatMap((r) => r.opinions),
  decisions: rounds.map((r) => r.decision),
  horizons: new Map([["trend", 1], ["contrarian", 2], ["sleepy", 1]]),
  returnAfter,
  flatMeansNotLong: false,
  eventDetail: "decisions",
  ...extra
})

/** Six rounds on UP (days 0–5) where trend says long and contrarian short; sleepy abstains or says nothing; two on FLAT. */
const sample = [
  ...[0, 1, 2, 3, 4, 5].map((day) =>
    round("UP", day, "long", [
      { agent: "trend", direction: "long", confidence: 0.8 },
      { agent: "contrarian", direction: "short", confidence: 0.5 },
      { agent: "sleepy", direction: "long", confidence: 0.1, abstain: true }
    ])
  ),
  round("FLAT", 0, "flat", [{ agent: "trend", direction: "long", confidence: 0.6 }, { agent: "contrarian", direction: "flat", confidence: 0.7 }], [["sleepy", "no_answer"]]),
  round("FLAT", 10, "flat", [{ agent: "trend", direction: "flat", confidence: 0.6 }, { agent: "contrarian", direction: "flat", confidence: 0.7 }], [["sleepy", "failed"]])
]

describe("analyst_scores", () => {
  it("counts each analyst's opinions, votes, abstentions and dissent, and scores its votes at its horizon", () => {
    const view = analystScores(input(sample))
    expect(view.rounds).toBe(8)
    const [trend, contrarian, sleepy, idle] = view.analysts
    expect(trend).toMatchObject({
      agent: "trend",
      opinions: 8,
      long: 7,
      flat: 1,
      short: 0,
      votes: 8,
      agreed: 7,
      dissented: 1,
      // 6 longs on UP right; the long on flat FLAT wrong, the flat on day 10 right (day 11 is the last bar).
      scored: 8,
      correct: 7,
      horizon: 1
    })
    expect(trend!.averageConfidence).toBeCloseTo((6 * 0.8 + 0.6 + 0.6) / 8, 12)
    expect(trend!.hitRate).toBeCloseTo(7 / 8, 12)
    // Horizon 2: day 10 + 2 is past the data, so 7 scored; shorts on UP all wrong, the flat on FLAT right.
    expect(contrarian).toMatchObject({ votes: 8, agreed: 2, dissented: 6, scored: 7, correct: 1, horizon: 2 })
    expect(sleepy).toMatchObject({
      opinions: 6,
      votes: 0,
      scored: 0,
      hitRate: null,
      abstentions: { belowMinConfidence: 6, noAnswer: 1, failed: 1 }
    })
    // In the roster, in no round: zeros, no horizon.
    expect(idle).toMatchObject({ agent: "idle", opinions: 0, votes: 0, averageConfidence: null, hitRate: null, horizon: null })
    expect(view.mostAccurate).toBe("trend")
    expect(view.leastAccurate).toBe("contrarian")
    expect(view.unscored).toBeNull()
  })

  it("a run that may not short scores flat as 'did not rise': right on a fall, as adaptive weights score it", () => {
    const rounds = [round("DOWN", 0, "flat", [{ agent: "trend", direction: "flat", confidence: 0.9 }])]
    expect(analystScores(input(rounds)).analysts[0]).toMatchObject({ scored: 1, correct: 0 })
    expect(analystScores(input(rounds, { flatMeansNotLong: true })).analysts[0]).toMatchObject({ scored: 1, correct: 1 })
  })

  it("one symbol's rounds, one analyst, in any case; a ranking needs two analysts with enough scored votes", () => {
    const up = analystScores(input(sample, { symbol: "up" }))
    expect(up.rounds).toBe(6)
    expect(up.analysts[0]).toMatchObject({ agent: "trend", votes: 6, scored: 6, correct: 6 })
    const one = analystScores(input(sample, { agent: "CONTRARIAN" }))
    expect(one.analysts.map((a) => a.agent)).toEqual(["contrarian"])
    // One analyst: nobody to rank it against.
    expect([one.mostAccurate, one.leastAccurate]).toEqual([null, null])
    // A name that is none of the run's analysts: told which are.
    const unknown = analystScores(input(sample, { agent: "nobody" }))
    expect(unknown.analysts).toEqual([])
    expect(describeAnalystScores(unknown)).toBe("This run has no analyst named \"nobody\": its analysts are trend, contrarian, sleepy and idle.")
    const few = analystScores(input(sample.slice(0, MIN_SCORED - 1)))
    expect([few.mostAccurate, few.leastAccurate]).toEqual([null, null])
    expect(describeAnalystScores(few)).toContain(`No two analysts have the ${MIN_SCORED} scored votes a comparison needs yet.`)
    // Two analysts equally right: the one with more scored votes is named the most accurate, and no least.
    const agreeing = [0, 1, 2, 3, 4, 5].map((day) =>
      round("UP", day, "long", [{ agent: "trend", direction: "long", confidence: 0.8 }, ...(day < 5 ? [{ agent: "contrarian", direction: "long" as const, confidence: 0.5 }] : [])])
    )
    const even = analystScores(input(agreeing, { horizons: new Map([["trend", 1], ["contrarian", 1]]) }))
    expect([even.mostAccurate, even.leastAccurate]).toEqual(["trend", null])
  })

  it("without the run's bars nothing is scored, and says why; with no decision, says so", () => {
    const view = analystScores(input(sample, { returnAfter: null, unscored: "the data file data/UP.csv changed since the run read it" }))
    expect(view.analysts[0]).toMatchObject({ votes: 8, scored: 0, hitRate: null })
    expect(view.mostAccurate).toBeNull()
    expect(describeAnalystScores(view)).toContain("Votes are not scored: the data file data/UP.csv changed since the run read it.")
    expect(describeAnalystScores(analystScores(input([])))).toBe("No decision is recorded yet, so there is no analyst's call to score.")
    expect(describeAnalystScores(analystScores(input([], { symbol: "UP" })))).toBe("No decision is recorded on UP yet, so there is no analyst's call to score.")
  })

  it("says which rounds were read, the most and least accurate, who dissented most, and each analyst", () => {
    const text = describeAnalystScores(analystScores(input(sample, { roundsInRun: 12_345 })))
    expect(text).toBe(
      "Over 8 rounds with a recorded decision (the latest of its 12,345); the run records the rounds that changed a target " +
        "(event detail \"decisions\"), so these are the calls that moved the book, not every round. " +
        "Each vote is scored against its symbol's close its horizon later, as adaptive weights score it: long is right when the " +
        "close rose by more than 0.1%, short when it fell by more, flat when it moved less. " +
        "Most accurate: trend, right 7 of 8 (87.5%); least: contrarian, 1 of 7 (14.3%). " +
        "contrarian dissented most (6 of its 8 votes). " +
        "By analyst: trend: 8 opinions (7 long and 1 flat, confidence 0.75 on average), 8 votes (7 with the decision, 1 dissenting); " +
        "right 7 of 8 scored (87.5%) at 1 bar; " +
        "contrarian: 8 opinions (6 short and 2 flat, confidence 0.55 on average), 8 votes (2 with the decision, 6 dissenting); " +
        "right 1 of 7 scored (14.3%) at 2 bars; " +
        "sleepy: 6 opinions (6 long, confidence 0.1 on average), 0 votes, abstained 8 (6 below the minimum confidence, " +
        "1 with no answer (warming up, or too late) and 1 failed (a crash or a refusal)); " +
        "idle: no opinion in these rounds."
    )
    expect(describeAnalystScores(analystScores(input(sample, { eventDetail: "rounds", flatMeansNotLong: true })))).toContain(
      "Over 8 rounds with a recorded decision; every round is recorded. Each vote is scored against its symbol's close its " +
        "horizon later, as adaptive weights score it: long is right when the close rose by more than 0.1%, short when it fell " +
        "by more, flat when it did not rise by more (the run may not short)."
    )
  })
})
