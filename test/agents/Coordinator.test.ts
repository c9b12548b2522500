/**
 * The coordinator with stub analysts (answering with fixed opinions, silent, crashing), a recording
 * risk officer and a recording desk: rounds closing at the deadline, abstentions, which decisions
 * reach the risk officer, failing closed when it does not answer, and the events each detail level
 * records.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as Coordinator from "../../agents/Coordinator.js"
import { RequestOpinions } from "../../schemas/AnalystProtocol.js"
import { ConsensusConfig } from "../../schemas/Decision.js"
import type { RoundId, Symbol } from "../../schemas/Ids.js"
import type { Direction, Opinion } from "../../schemas/Opinion.js"
import { type Judge, MarketUpdate } from "../../schemas/TradingProtocol.js"
import * as Actor from "../../src/actor/Actor.js"
import { AAA, agent, at, bar, BBB, HOUR, inSpine, recordingDesk, recordingRisk, type Spine, wire } from "./spine.js"

type Script = (symbol: Symbol, ts: number) => readonly [Direction, number] | undefined

/** An analyst answering every round its script has an opinion for. */
const scripted = (name: string, script: Script) =>
  Actor.make({
    protocol: RequestOpinions,
    initial: undefined as void,
    behavior: (_s, request, ctx) =>
      ctx.reply(
        request,
        request.rounds.flatMap(({ bar, round }): Array<Opinion> => {
          const said = script(bar.symbol, request.ts)
          return said === undefined ? [] : [{
            round,
            agent: agent(name),
            symbol: bar.symbol,
            ts: request.ts,
            direction: said[0],
            confidence: said[1],
            horizon: 1,
            rationale: `${name} says ${said[0]}`,
            features: {}
          }]
        })
      )
  })

/** An analyst that takes every request and never answers. */
const Silent = Actor.make({
  protocol: RequestOpinions,
  initial: undefined as void,
  behavior: (_s, request, ctx) => Effect.sync(() => void ctx.replyLater(request))
})

/** An analyst that crashes on every request. */
const Crasher = Actor.make({
  protocol: RequestOpinions,
  initial: undefined as void,
  behavior: () => Effect.dieMessage("the model blew up")
})

interface Member {
  readonly name: string
  readonly spec: typeof Silent
  readonly weight?: number
}

const DEADLINE = 1_000
const JUDGE_TIMEOUT = 10_000

const spawnCoordinator = (
  spine: Spine,
  roster: ReadonlyArray<Member>,
  options: {
    readonly consensus?: typeof ConsensusConfig.Encoded
    readonly events?: "decisions" | "rounds"
    readonly silentRisk?: (n: number) => boolean
    readonly working?: (judged: Judge) => ReadonlyArray<RoundId>
    readonly refusing?: (judged: Judge) => { readonly refused: ReadonlyArray<RoundId>; readonly standing: ReadonlyArray<RoundId> }
    readonly flatMeansNotLong?: boolean
    readonly standingRejections?: boolean
  } = {}
) => {
  const risk = recordingRisk(options.silentRisk, options.working, options.refusing)
  const desk = recordingDesk()
  const riskRef = spine.inSystem(Actor.spawn(risk.spec, { name: "risk" }))
  const deskRef = spine.inSystem(Actor.spawn(desk.spec, { name: "desk" }))
  const refs = roster.map((m) => spine.inSystem(Actor.spawn(m.spec, { name: m.name })))
  const stats: Coordinator.CoordinatorStats = { rounds: 0, decisions: 0 }
  const coordinator = spine.inSystem(Actor.spawn(
    Coordinator.make({
      log: spine.log,
      roster: roster.map((m, i) => ({ agent: agent(m.name), weight: m.weight ?? 1, horizon: 1, ref: wire(refs[i]!) })),
      consensus: Schema.decodeUnknownSync(ConsensusConfig)({ deadlineMillis: DEADLINE, ...options.consensus }),
      events: options.events ?? "decisions",
      judgeTimeoutMillis: JUDGE_TIMEOUT,
      risk: wire(riskRef),
      desk: wire(deskRef),
      stats,
      ...(options.flatMeansNotLong === undefined ? {} : { flatMeansNotLong: options.flatMeansNotLong }),
      ...(options.standingRejections === undefined ? {} : { standingRejections: options.standingRejections })
    }),
    { name: "coordinator" }
  ))
  let last = 0
  /** The bars of `ts` (closes by symbol) reach the coordinator at virtual time `ts`. */
  const feed = (ts: number, closes: Partial<Record<Symbol, number>>) => {
    spine.world.advanceTo(ts)
    last = ts
    const bars = Object.entries(closes).map(([symbol, close]) => bar(symbol as Symbol, ts, { close: close! }))
    spine.send(coordinator.tell(new MarketUpdate({ ts: ts as never, bars })))
  }
  /** Let every deadline and timeout of the last bar pass. */
  const finish = () => spine.world.advanceTo(last + HOUR)
  return { feed, finish, judged: risk.judged, desk, stats }
}

const [t1, t2, t3, t4] = [at(0, 10), at(0, 11), at(0, 12), at(0, 13)]

const always = (direction: Direction, confidence: number): Script => () => [direction, confidence]

describe("the coordinator", () => {
  it("closes a round as soon as every analyst has answered", inSpine((spine) => {
    const { feed, finish } = spawnCoordinator(spine, [
      { name: "a", spec: scripted("a", always("long", 0.9)) },
      { name: "b", spec: scripted("b", always("long", 0.6)) }
    ], { events: "rounds" })
    feed(t1, { [AAA]: 100 })
    finish()
    expect(spine.ofTag("DecisionMade").map((e) => e.at)).toEqual([t1])
  }))

  it("closes a round at the deadline when an analyst is silent, with the answers it has", inSpine((spine) => {
    const { feed, finish, judged } = spawnCoordinator(spine, [
      { name: "a", spec: scripted("a", always("long", 0.9)) },
      { name: "silent", spec: Silent }
    ], { events: "rounds" })
    feed(t1, { [AAA]: 100 })
    finish()
    const made = spine.ofTag("DecisionMade")
    expect(made.map((e) => e.at)).toEqual([t1 + DEADLINE])
    expect(made[0]!.decision).toMatchObject({ action: "long", confidence: 0.9, participation: 0.5, votes: [{ agent: "a" }] })
    expect(judged.map((j) => j.ts)).toEqual([t1])
  }))

  it("counts a crashed analyst as a `failed` abstention and still decides with the others", inSpine((spine) => {
    const { feed, finish, judged } = spawnCoordinator(spine, [
      { name: "a", spec: scripted("a", always("long", 0.9)) },
      { name: "silent", spec: Silent },
      { name: "crasher", spec: Crasher }
    ], { consensus: { quorum: 0.3 }, events: "rounds" })
    feed(t1, { [AAA]: 100 })
    finish()
    expect(spine.lifecycle.filter((e) => e._tag === "ActorCrashed")).toMatchObject([{ actor: "/user/crasher" }])
    const [made] = spine.ofTag("DecisionMade")
    expect(made!.decision).toMatchObject({ action: "long", votes: [{ agent: "a", direction: "long" }] })
    expect(made!.decision.abstentions).toContainEqual({ agent: "crasher", reason: "failed" })
    expect(made!.decision.participation).toBeCloseTo(1 / 3)
    expect(judged).toHaveLength(1)
  }))

  // BUG: the coordinator marks every analyst whose ask failed as `failed` — a timeout included
  // (agents/Coordinator.ts: `if (answers[a]!._tag === "Left") failed.add(...)`), so an analyst that
  // simply did not answer before the deadline is recorded as `failed`, never `no_answer`.
  it("counts a silent analyst as a `no_answer` abstention", inSpine((spine) => {
    const { feed, finish } = spawnCoordinator(spine, [
      { name: "a", spec: scripted("a", always("long", 0.9)) },
      { name: "silent", spec: Silent },
      { name: "crasher", spec: Crasher }
    ], { consensus: { quorum: 0.3 }, events: "rounds" })
    feed(t1, { [AAA]: 100 })
    finish()
    const [made] = spine.ofTag("DecisionMade")
    expect(made!.decision.abstentions).toEqual([
      { agent: "silent", reason: "no_answer" },
      { agent: "crasher", reason: "failed" }
    ])
  }))

  it("sends the risk officer only the decisions that change a symbol's target", inSpine((spine) => {
    const script: Script = (symbol, ts) => {
      if (symbol === AAA) return ts === t3 ? ["short", 0.2] : ts === t4 ? ["flat", 0.9] : ["long", 0.9]
      return ts >= t3 ? ["long", 0.8] : ["flat", 0.9]
    }
    const { desk, feed, finish, judged, stats } = spawnCoordinator(spine, [{ name: "a", spec: scripted("a", script) }], {
      consensus: { minDecisionConfidence: 0.5 }
    })
    feed(t1, { [AAA]: 100, [BBB]: 50 }) // AAA flat → long: judged; BBB flat stays flat
    feed(t2, { [AAA]: 101, [BBB]: 51 }) // nothing changes
    feed(t3, { [AAA]: 102, [BBB]: 52 }) // AAA below the decision minimum: hold; BBB flat → long
    feed(t4, { [AAA]: 103, [BBB]: 53 }) // AAA long → flat; BBB long stays long
    finish()
    expect(judged.map((j) => [j.ts, j.decisions.map((d) => [d.symbol, d.action]), j.closes])).toEqual([
      [t1, [[AAA, "long"]], [100]],
      [t3, [[BBB, "long"]], [52]],
      [t4, [[AAA, "flat"]], [103]]
    ])
    expect(spine.ofTag("DecisionMade").map((e) => e.decision.round)).toEqual([`AAA@${t1}`, `BBB@${t3}`, `AAA@${t4}`])
    expect(stats).toMatchObject({ rounds: 8, decisions: 3 })
    // Every bar reached the desk first, with its bars.
    expect(desk.opens.map((o) => [o.ts, o.bars.length])).toEqual([[t1, 2], [t2, 2], [t3, 2], [t4, 2]])
  }))

  it("records ExecutionBlocked when the risk officer does not answer, and offers the target again on the next bar", inSpine((spine) => {
    const { feed, finish, judged } = spawnCoordinator(spine, [{ name: "a", spec: scripted("a", always("long", 0.9)) }], {
      silentRisk: (n) => n === 1
    })
    feed(t1, { [AAA]: 100 })
    feed(t2, { [AAA]: 101 })
    feed(t3, { [AAA]: 102 })
    finish()
    const blocked = spine.ofTag("ExecutionBlocked")
    expect(blocked).toHaveLength(1)
    expect(blocked[0]).toMatchObject({ ts: t1, rounds: [`AAA@${t1}`], at: t1 + JUDGE_TIMEOUT })
    // Offered again at t2 (answered then), and not again at t3.
    expect(judged.map((j) => j.decisions.map((d) => [d.round, d.action]))).toEqual([
      [[`AAA@${t1}`, "long"]],
      [[`AAA@${t2}`, "long"]]
    ])
  }))

  it("sends the remainder of a target the risk officer still works on the symbol's next bars while the consensus stands, hold included", inSpine((spine) => {
    const [t5, t6] = [at(0, 14), at(0, 15)]
    // AAA: long, long, no quorum (hold), long, flat, flat. BBB: flat throughout.
    const script: Script = (symbol, ts) => symbol === BBB ? ["flat", 0.9] : ts === t3 ? ["long", 0.1] : ts >= t5 ? ["flat", 0.9] : ["long", 0.9]
    // The officer works AAA's long until t4, and its flat from t5 (answered at t5 only).
    const still = new Set([`AAA@${t1}`, `AAA@${t2}`, `AAA@${t3}`, `AAA@${t5}`])
    const { feed, finish, judged } = spawnCoordinator(spine, [{ name: "a", spec: scripted("a", script) }], {
      consensus: { minDecisionConfidence: 0.5 },
      working: (j) => [...(j.remainders ?? []), ...j.decisions].map((x) => x.round).filter((round) => still.has(round))
    })
    for (const [ts, close] of [[t1, 100], [t2, 101], [t3, 102], [t4, 103], [t5, 104], [t6, 105]] as const) feed(ts, { [AAA]: close, [BBB]: 50 })
    finish()
    expect(judged.map((j) => [j.ts, j.decisions.map((d) => `${d.symbol} ${d.action}`), (j.remainders ?? []).map((r) => `${r.round} ${r.close}`)])).toEqual([
      [t1, ["AAA long"], []],
      [t2, [], [`AAA@${t2} 101`]],
      [t3, [], [`AAA@${t3} 102`]],
      [t4, [], [`AAA@${t4} 103`]],
      // The work on the long ended at t4; the flat is a new decision, then its own work.
      [t5, ["AAA flat"], []],
      [t6, [], [`AAA@${t6} 105`]]
    ])
    // The remainders are no decisions: none recorded, none counted.
    expect(spine.ofTag("DecisionMade").map((e) => e.decision.round)).toEqual([`AAA@${t1}`, `AAA@${t5}`])
  }))

  it("a remainder the risk officer does not answer is blocked, said so, and sent again on the next bar", inSpine((spine) => {
    const { feed, finish, judged } = spawnCoordinator(spine, [{ name: "a", spec: scripted("a", always("long", 0.9)) }], {
      silentRisk: (n) => n === 2,
      working: (j) => [...(j.remainders ?? []), ...j.decisions].map((x) => x.round)
    })
    for (const [ts, close] of [[t1, 100], [t2, 101], [t3, 102]] as const) feed(ts, { [AAA]: close })
    finish()
    expect(spine.ofTag("ExecutionBlocked")).toMatchObject([{ ts: t2, rounds: [`AAA@${t2}`] }])
    expect(judged.map((j) => [j.decisions.map((d) => d.round), (j.remainders ?? []).map((r) => r.round)])).toEqual([
      [[`AAA@${t1}`], []],
      [[], [`AAA@${t2}`]],
      [[], [`AAA@${t3}`]]
    ])
  }))

  it("a consensus that changes while a target is worked sends the new decision, not the old remainder", inSpine((spine) => {
    const script: Script = (_symbol, ts) => ts >= t3 ? ["flat", 0.9] : ["long", 0.9]
    const { feed, finish, judged } = spawnCoordinator(spine, [{ name: "a", spec: scripted("a", script) }], {
      working: (j) => j.decisions.filter((d) => d.action === "long").map((d) => d.round).concat((j.remainders ?? []).map((r) => r.round))
    })
    for (const [ts, close] of [[t1, 100], [t2, 101], [t3, 102], [t4, 103]] as const) feed(ts, { [AAA]: close })
    finish()
    expect(judged.map((j) => [j.decisions.map((d) => d.action), (j.remainders ?? []).map((r) => r.round)])).toEqual([
      [["long"], []],
      [[], [`AAA@${t2}`]],
      [["flat"], []]
    ])
  }))

  describe("a decision the halted state alone rejected (standing)", () => {
    const times = Array.from({ length: 9 }, (_, i) => at(0, 10 + i))
    /** AAA: long, long, no quorum (hold), long, flat (its target), long, long, then long after a lift. */
    const script: Script = (_symbol, ts) => {
      const i = times.indexOf(ts as never)
      return i === 2 ? ["long", 0.1] : i === 4 ? ["flat", 0.9] : ["long", 0.9]
    }
    const lift = (spine: Spine, ts: number) =>
      spine.log.emit("TradingStateChanged", {
        transition: { from: "halted", to: "active", cause: "operator", at: ts as never, reason: "the loss is acknowledged", actor: "alice" }
      })
    /** Halted until the lift before the 8th bar: every intent refused, for the state alone. */
    const run = (spine: Spine, standingRejections: boolean) => {
      const refusedBefore = times[7]!
      const coordinator = spawnCoordinator(spine, [{ name: "a", spec: scripted("a", script) }], {
        consensus: { minDecisionConfidence: 0.5 },
        standingRejections,
        refusing: (j) => {
          const rounds = j.ts < refusedBefore ? j.decisions.map((d) => d.round) : []
          return { refused: rounds, standing: rounds }
        }
      })
      times.forEach((ts, i) => {
        if (i === 7) lift(spine, ts - 1)
        coordinator.feed(ts, { [AAA]: 100 + i })
      })
      coordinator.finish()
      return coordinator
    }

    it("is not sent again while the state stands and the consensus does; a new consensus, or a lifted halt, sends it on the next bar", inSpine((spine) => {
      const { judged, stats } = run(spine, true)
      const sent = judged.map((j) => times.indexOf(j.ts))
      // Bar 0 refused: bars 1 to 3 repeat it (a hold between keeps it); bar 4's flat is the target, so
      // bar 5's long is a new consensus (refused again); bar 6 repeats it; the halt lifts before bar 7.
      expect(sent).toEqual([0, 5, 7])
      // The rounds that repeat it record nothing, and are no decisions.
      expect(spine.ofTag("DecisionMade").map((e) => times.indexOf(e.decision.ts))).toEqual([0, 5, 7])
      expect(stats.decisions).toBe(3)
    }))

    it("is sent on every bar that repeats it in a run recorded before (no standingRejections)", inSpine((spine) => {
      const { judged } = run(spine, false)
      expect(judged.map((j) => times.indexOf(j.ts))).toEqual([0, 1, 3, 5, 6, 7])
    }))

    it("a remainder the halted state rejected is not sent again until the state changes", inSpine((spine) => {
      const { feed, finish, judged } = spawnCoordinator(spine, [{ name: "a", spec: scripted("a", always("long", 0.9)) }], {
        standingRejections: true,
        // The long is reduced (worked on); its remainders are refused for the state until the lift.
        working: (j) => [...(j.remainders ?? []), ...j.decisions].map((x) => x.round),
        refusing: (j) => {
          const rounds = j.ts < times[4]! ? (j.remainders ?? []).map((r) => r.round) : []
          return { refused: [], standing: rounds }
        }
      })
      times.slice(0, 6).forEach((ts, i) => {
        if (i === 4) lift(spine, ts - 1)
        feed(ts, { [AAA]: 100 + i })
      })
      finish()
      expect(judged.map((j) => [times.indexOf(j.ts), j.decisions.length, (j.remainders ?? []).length])).toEqual([
        [0, 1, 0],
        [1, 0, 1],
        [4, 0, 1],
        [5, 0, 1]
      ])
    }))
  })

  it("with one analyst, decides that analyst's opinion: its action and its confidence", inSpine((spine) => {
    const script: Script = (_symbol, ts) => ts === t1 ? ["short", 0.7] : ts === t2 ? ["long", 0.55] : ["flat", 0.3]
    const { feed, finish, judged } = spawnCoordinator(spine, [{ name: "solo", spec: scripted("solo", script), weight: 2.5 }], {
      events: "rounds"
    })
    feed(t1, { [AAA]: 100 })
    feed(t2, { [AAA]: 100 })
    feed(t3, { [AAA]: 100 })
    finish()
    const decisions = spine.ofTag("DecisionMade").map((e) => e.decision)
    expect(decisions.map((d) => [d.action, d.confidence])).toEqual([["short", 0.7], ["long", 0.55], ["flat", 0.3]])
    expect(decisions[0]).toMatchObject({
      votes: [{ agent: "solo", direction: "short", confidence: 0.7, weight: 2.5 }],
      abstentions: [],
      dissent: [],
      participation: 1,
      quorumMet: true
    })
    expect(judged.flatMap((j) => j.decisions.map((d) => [d.action, d.confidence]))).toEqual([["short", 0.7], ["long", 0.55], ["flat", 0.3]])
  }))

  describe("events", () => {
    const script: Script = (symbol, ts) => symbol === AAA && ts >= t2 ? ["long", 0.9] : ["flat", 0.9]
    const roster = (): ReadonlyArray<Member> => [
      { name: "a", spec: scripted("a", script) },
      { name: "b", spec: scripted("b", script) }
    ]
    const drive = (spine: Spine, events: "rounds" | "decisions") => {
      const { feed, finish } = spawnCoordinator(spine, roster(), { events })
      feed(t1, { [AAA]: 100, [BBB]: 50 })
      feed(t2, { [AAA]: 101, [BBB]: 51 })
      feed(t3, { [AAA]: 102, [BBB]: 52 })
      finish()
    }

    it("`rounds` records every round: each analyst's opinion and the decision", inSpine((spine) => {
      drive(spine, "rounds")
      expect(spine.ofTag("DecisionMade")).toHaveLength(6)
      expect(spine.ofTag("OpinionGiven")).toHaveLength(12)
      expect(spine.events.map((e) => e._tag)).toEqual(
        Array.from({ length: 6 }, () => ["OpinionGiven", "OpinionGiven", "DecisionMade"]).flat()
      )
    }))

    it("`decisions` records only the rounds whose decision changed a target", inSpine((spine) => {
      drive(spine, "decisions")
      expect(spine.ofTag("DecisionMade").map((e) => e.decision.round)).toEqual([`AAA@${t2}`])
      expect(spine.ofTag("OpinionGiven").map((e) => [e.opinion.agent, e.opinion.round])).toEqual([
        ["a", `AAA@${t2}`],
        ["b", `AAA@${t2}`]
      ])
    }))
  })

  it("adaptive weights: an analyst that keeps being right gains weight, one that keeps being wrong loses it", inSpine((spine) => {
    // The price rises every bar: "bull" (long) is right each time, "bear" (short) wrong.
    const { feed, finish, judged } = spawnCoordinator(spine, [
      { name: "bull", spec: scripted("bull", () => ["long", 0.6]) },
      { name: "bear", spec: scripted("bear", () => ["short", 0.6]) }
    ], { consensus: { adaptiveWeights: { enabled: true, alpha: 0.5, floor: 0.25, ceiling: 2 } } })
    for (let i = 0; i < 8; i++) feed(at(0, 1 + i), { [AAA]: 100 + i })
    finish()
    // Equal weights tie at first (flat); as accuracy builds, the bull outweighs the bear and the
    // coordinator turns long; the decision's votes carry the adapted weights.
    const decisions = judged.flatMap((j) => j.decisions)
    const long = decisions.find((d) => d.action === "long")
    expect(long).toBeDefined()
    const bull = long!.votes.find((v) => v.agent === "bull")!
    const bear = long!.votes.find((v) => v.agent === "bear")!
    expect(bull.weight).toBeGreaterThan(1)
    expect(bear.weight).toBeLessThan(1)
    expect(bear.weight).toBeGreaterThanOrEqual(0.25)
  }))

  it("adaptive weights score votes only: an abstention (below minConfidence) is never counted wrong", inSpine((spine) => {
    // The price rises every bar. "quiet" says flat at 0.1 (an abstention under minConfidence 0.2)
    // until its last bars, then long at 0.9: its weight must start from where it began, not the floor.
    const { feed, finish } = spawnCoordinator(spine, [
      { name: "bull", spec: scripted("bull", () => ["long", 0.6]) },
      { name: "quiet", spec: scripted("quiet", (_symbol, ts) => (ts >= at(0, 9) ? ["long", 0.9] : ["flat", 0.1])) }
    ], { events: "rounds", consensus: { minConfidence: 0.2, adaptiveWeights: { enabled: true, alpha: 0.5, floor: 0.25, ceiling: 2 } } })
    for (let i = 0; i < 10; i++) feed(at(0, 1 + i), { [AAA]: 100 + i })
    finish()
    const votes = spine.ofTag("DecisionMade").flatMap((e) => e.decision.votes).filter((v) => v.agent === "quiet")
    expect(votes.length).toBeGreaterThan(0)
    // Never scored, its accuracy is where it started: weight 1 (its roster weight × 2 × 0.5).
    for (const vote of votes) expect(vote.weight).toBe(1)
  }))

  for (const flatMeansNotLong of [true, false]) {
    it(`adaptive weights, a run that may not short: a flat through a fall is ${flatMeansNotLong ? "right (not long)" : "wrong (moved; runs recorded before)"}`, inSpine((spine) => {
      // The price falls every bar. With shorting off "bear" can only say flat; "bull" says long.
      const { feed, finish } = spawnCoordinator(spine, [
        { name: "bull", spec: scripted("bull", () => ["long", 0.6]) },
        { name: "bear", spec: scripted("bear", () => ["flat", 0.6]) }
      ], { events: "rounds", flatMeansNotLong, consensus: { adaptiveWeights: { enabled: true, alpha: 0.5, floor: 0.25, ceiling: 2 } } })
      for (let i = 0; i < 8; i++) feed(at(0, 1 + i), { [AAA]: 100 - i })
      finish()
      const last = spine.ofTag("DecisionMade").at(-1)!.decision.votes
      const bear = last.find((v) => v.agent === "bear")!
      const bull = last.find((v) => v.agent === "bull")!
      expect(bull.weight).toBeLessThan(1)
      if (flatMeansNotLong) expect(bear.weight).toBeGreaterThan(1)
      else expect(bear.weight).toBeLessThan(1)
    }))
  }
})
