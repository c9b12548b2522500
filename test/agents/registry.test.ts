import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema, Stream, TestClock } from "effect"
import { SMA } from "trading-signals"
import { RequestOpinions } from "../../schemas/AnalystProtocol.js"
import type { ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { AgentId, RoundId } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import { Opinion } from "../../schemas/Opinion.js"
import { AgentConfig } from "../../schemas/Strategy.js"
import * as Analyst from "../../agents/Analyst.js"
import { copySignal, type Model } from "../../agents/analysts/Model.js"
import { analystOf, analysts, analystSpec, invalidAgentOf, llmAnalysts, MAX_WINDOW_BYTES, rosterOf, unsendableAnswer, windowBytes } from "../../agents/registry.js"
import type { AnyLlmAnalystType } from "../../agents/LlmAnalyst.js"
import { JudgementAnswer } from "../../agents/analysts/internal/llm.js"
import type { RunId } from "../../schemas/Ids.js"
import { defaultLlmConfig, type LlmCall } from "../../schemas/Llm.js"
import { LlmSession, recordingKey } from "../../src/llm/LlmSession.js"
import * as Offline from "../../src/llm/Offline.js"
import { RunLog } from "../../src/swarm/RunLog.js"
import * as Actor from "../../src/actor/Actor.js"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { run, settle } from "../support.js"
import { seededDraws } from "../../agents/analysts/internal/draws.js"

const market = Synthetic.generate(Synthetic.sampleConfig)
const symbols = [...market.bars.keys()].slice(0, 2)
/** An alert about `bar`'s symbol, delivered with it (every 30th timestamp below). */
const alertFor = (bar: Bar, t: number): ExternalSignal => ({
  source: "tradingview",
  symbol: bar.symbol,
  ticker: bar.symbol,
  action: t % 60 === 0 ? "buy" : "sell",
  price: bar.close,
  alertId: `alert-${t}`,
  receivedAt: bar.ts
})

/**
 * The first `n` timestamps of two symbols, as the coordinator would ask them, with an outside
 * signal now and then: models that read signals get some, the others must ignore them.
 */
const requests = (n: number) =>
  Array.from({ length: n }, (_, t) => {
    const bars = symbols.map((symbol) => market.bars.get(symbol)![t]!)
    return new RequestOpinions({
      ts: bars[0]!.ts,
      rounds: bars.map((bar: Bar) =>
        t % 30 === 0
          ? { round: `${bar.symbol}@${bar.ts}` as RoundId, bar, signals: [alertFor(bar, t)] }
          : { round: `${bar.symbol}@${bar.ts}` as RoundId, bar }
      )
    })
  })
const agent = (input: unknown) => Schema.decodeUnknownSync(AgentConfig)(input)
/** The rounds a list of requests asks about. */
const rounds = (asked: ReadonlyArray<RequestOpinions>) => new Set<string>(asked.flatMap((r) => r.rounds.map((x) => x.round)))
/** The longest brief an LLM analyst may ask for (agents/analysts/internal/llm.ts `bars`): past it, every type has warmed up. */
const BRIEF_BARS_MAX = 200

describe("the agent registry", () => {
  // Superset checks: a researcher's new analyst (one model file, one registry line) passes them
  // untouched, and is then checked like every other type by the tests generated below.
  it("registers the built-in analysts under their strategy names, each under its model's type", () => {
    const builtIn = ["bollinger_breakout", "ema_crossover", "macd_momentum", "rsi_reversion", "sma_crossover", "tradingview", "volume_surge"]
    expect([...analysts.keys()]).toEqual(expect.arrayContaining(builtIn))
    for (const [type, model] of analysts) {
      expect(model.type).toBe(type)
      // A name a strategy can write (`agents[].type`).
      expect(Schema.decodeUnknownEither(AgentConfig)({ type })._tag).toBe("Right")
    }
  })

  it("an analyst type names one kind of analyst: no LLM analyst shares a name with a model", () => {
    for (const type of llmAnalysts.keys()) expect(analysts.has(type)).toBe(false)
  })

  for (const [type] of analysts) {
    it.effect(`${type}: decodes its default config and answers its protocol with valid opinions`, () =>
      run(Effect.gen(function*() {
        const spec = Either.getOrThrow(analystSpec(agent({ type }), 0, true))
        const ref = yield* Actor.spawn(spec, { name: type })
        let answered = 0
        for (const request of requests(150)) {
          const opinions = yield* ref.ask(request)
          for (const opinion of opinions) {
            Schema.decodeUnknownSync(Opinion)(opinion) // every field within its schema
            expect(opinion.agent).toBe(type)
            expect(opinion.ts).toBe(request.ts)
            answered++
          }
        }
        expect(answered).toBeGreaterThan(0) // past its warm-up it has opinions
      })))
  }

  it("registers the built-in LLM analysts under their strategy names, each under its type, its answers sendable as JSON Schema", () => {
    expect([...llmAnalysts.keys()]).toEqual(expect.arrayContaining(["llm_analyst", "llm_debate"]))
    for (const [type, analyst] of llmAnalysts) {
      expect(analyst.type).toBe(type)
      expect(analyst.answers.length, type).toBeGreaterThan(0)
      expect(unsendableAnswer(analyst), type).toBeUndefined()
    }
  })

  it("an LLM analyst type whose answer schema has no JSON Schema is refused with the strategy, naming the agent", () => {
    const Dated = Schema.Struct({ direction: Schema.Literal("long", "flat"), when: Schema.DateFromSelf })
    const dated: AnyLlmAnalystType = { ...llmAnalysts.get("llm_analyst")!, type: "dated_llm", answers: [JudgementAnswer, Dated] }
    ;(llmAnalysts as Map<string, AnyLlmAnalystType>).set(dated.type, dated)
    try {
      const refused = invalidAgentOf({ agents: [agent({ type: "sma_crossover" }), agent({ type: "dated_llm", name: "dated" })], allowShort: false, symbols: ["A"] })
      expect(refused).toMatchObject({
        _tag: "InvalidAgent",
        agent: "dated",
        field: "agents[1].type",
        reason: expect.stringMatching(/^dated_llm's answer schema 2 of 2 cannot be sent to a model as JSON Schema: Missing annotation; at path: \["when"\]; /)
      })
      expect(refused!.message).not.toContain("\n")
      // A type that declares none (written before `answers`, run without the type checker).
      ;(llmAnalysts as Map<string, AnyLlmAnalystType>).set(dated.type, { ...dated, answers: undefined as never })
      expect(invalidAgentOf({ agents: [agent({ type: "dated_llm" })], allowShort: false, symbols: ["A"] })).toMatchObject({
        field: "agents[0].type",
        reason: "dated_llm declares no answer schemas: list every schema its calls ask for in its `answers` (agents/LlmAnalyst.ts)"
      })
    } finally {
      ;(llmAnalysts as Map<string, AnyLlmAnalystType>).delete(dated.type)
    }
  })

  for (const [type] of llmAnalysts) {
    // What every LLM analyst must do, whatever its warm-up (a brief of up to 200 bars) and however
    // often it abstains by design: answer every request, with valid opinions for the rounds asked
    // only, each call of a round at a step of its own, and the same on a second run.
    it.effect(`${type}: decodes its default config and answers its protocol with valid opinions (offline model), the same twice`, () =>
      run(Effect.gen(function*() {
        const asked = requests(BRIEF_BARS_MAX + 40)
        const once = (name: string) =>
          Effect.gen(function*() {
            const log = new RunLog("run" as RunId, () => 0)
            const calls: Array<LlmCall> = []
            const session = new LlmSession({ run: "run" as RunId, config: defaultLlmConfig, model: Offline.make(), onCall: (call) => void calls.push(call) })
            const resolved = Either.getOrThrow(analystOf(agent({ type }), 0, true))
            expect(resolved.llm).toBe(true)
            const ref = yield* Actor.spawn(resolved.actor({ session, log, deadlineMillis: 1_000, wallClock: false, ownPlanRole: true }), { name })
            const given: Array<unknown> = []
            for (const request of asked) {
              // Answered, not crashed: a crash is a NoReply here.
              const opinions = yield* ref.ask(request, { timeout: "10 seconds" })
              const rounds = new Map(request.rounds.map((r) => [r.round as string, r.bar.symbol as string]))
              const seen = new Set<string>()
              for (const opinion of opinions) {
                Schema.decodeUnknownSync(Opinion)(opinion)
                expect(opinion.agent).toBe(type)
                expect(opinion.ts).toBe(request.ts)
                // One opinion at most per round asked, about that round's symbol.
                expect(rounds.get(opinion.round)).toBe(opinion.symbol)
                expect(seen.has(opinion.round)).toBe(false)
                seen.add(opinion.round)
                given.push(Analyst.copyOpinion(opinion))
              }
            }
            // Each recorded under a key of its own (agent, round, step): a replay can answer it.
            const keys = calls.map((c) => recordingKey(c.agent, c.round, c.step))
            expect(new Set(keys).size).toBe(keys.length)
            expect(calls.every((c) => c.round !== undefined && rounds(asked).has(c.round))).toBe(true)
            return { given, calls: calls.map((c) => JSON.stringify(c)) }
          })
        const first = yield* once(type)
        const second = yield* once(`${type}-again`)
        expect(second).toEqual(first)
      })))
  }

  it("an unknown type or bad params are a typed InvalidAgent naming the field", () => {
    const unknown = analystSpec(agent({ type: "crystal_ball" }), 3, false)
    expect(Either.isLeft(unknown) && unknown.left).toMatchObject({ _tag: "InvalidAgent", field: "agents[3].type" })
    const bad = analystSpec(agent({ type: "sma_crossover", params: { fast: "ten" } }), 0, false)
    expect(Either.isLeft(bad) && bad.left.field).toBe("agents[0].params.fast")
    const extra = analystSpec(agent({ type: "sma_crossover", params: { fats: 5 } }), 1, false)
    expect(Either.isLeft(extra) && extra.left.field).toBe("agents[1].params.fats")
    const rounds = analystSpec(agent({ type: "llm_debate", params: { rounds: 9 } }), 2, false)
    expect(Either.isLeft(rounds) && rounds.left.field).toBe("agents[2].params.rounds")
    const model = analystSpec(agent({ type: "llm_analyst", params: { model: "bad model name!" } }), 0, false)
    expect(Either.isLeft(model) && model.left.field).toBe("agents[0].params.model")
  })

  it("each analyst's warm-up is measured as its header documents it; one of outside signals has none; the data too short for it is a warning", () => {
    const warmUps: ReadonlyArray<readonly [type: string, params: object, bars: number | undefined]> = [
      ["sma_crossover", { fast: 5, slow: 20 }, 20], // the slow-th bar
      ["ema_crossover", { fast: 5, slow: 20 }, 20],
      ["macd_momentum", { fast: 12, slow: 26, signal: 9 }, 34], // slow + signal - 1
      ["rsi_reversion", { period: 14 }, 15], // period + 1
      ["bollinger_breakout", { period: 20 }, 20],
      ["volume_surge", { period: 20 }, 21], // period + 1
      ["sma_crossover", { fast: 10, slow: 10_000 }, 10_000],
      ["tradingview", {}, undefined], // no opinion before an alert, whatever the bars
      ["llm_analyst", { bars: 60 }, 60],
      ["llm_debate", {}, 34] // its indicators' warm-up
    ]
    for (const [type, params, bars] of warmUps) {
      const resolved = analystOf(agent({ type, params }), 0, true)
      expect(Either.isRight(resolved) && resolved.right.warmUp(), `${type} ${JSON.stringify(params)}`).toBe(bars)
    }
    const roster = Either.getOrThrow(rosterOf({
      symbols: ["AAA", "BBB", "CCC"],
      allowShort: true,
      agents: [agent({ type: "sma_crossover", params: { fast: 5, slow: 300 } }), agent({ type: "rsi_reversion", params: { period: 14 } }), agent({ type: "tradingview" })]
    }))
    const barsBySymbol = (counts: Record<string, number>) => new Map(Object.entries(counts)) as never
    expect(Backtest.unwarmed(roster, { barsBySymbol: barsBySymbol({ AAA: 500, BBB: 250, CCC: 120 }) })).toEqual([
      "sma_crossover needs 300 bars of a symbol before its first opinion, and the data has at most 250 of BBB, CCC: it will give no opinion on them in this run"
    ])
    expect(Backtest.unwarmed(roster, { barsBySymbol: barsBySymbol({ AAA: 10, BBB: 10, CCC: 10 }) })).toEqual([
      "sma_crossover needs 300 bars of a symbol before its first opinion, and the data has 10 of AAA, BBB, CCC: it will give no opinion on any of its symbols in this run",
      "rsi_reversion needs 15 bars of a symbol before its first opinion, and the data has 10 of AAA, BBB, CCC: it will give no opinion on any of its symbols in this run"
    ])
    expect(Backtest.unwarmed(roster, { barsBySymbol: barsBySymbol({ AAA: 300, BBB: 300, CCC: 300 }) })).toEqual([])
    // One symbol: named.
    expect(Backtest.unwarmed(roster.slice(0, 1), { barsBySymbol: barsBySymbol({ AAA: 10 }) })).toEqual([
      "sma_crossover needs 300 bars of a symbol before its first opinion, and the data has 10 of AAA: it will give no opinion on AAA in this run"
    ])
    // A feed that cannot say how long it is: nothing to warn of.
    expect(Backtest.unwarmed(roster, {})).toEqual([])
  })

  it("a look-back longer than 10000 bars is refused with the strategy, not a crash on every bar", () => {
    const refusals: ReadonlyArray<readonly [type: string, params: object, field: string]> = [
      ["sma_crossover", { fast: 1, slow: 1e12 }, "slow"],
      ["ema_crossover", { fast: 10_001, slow: 20_000 }, "fast"],
      ["macd_momentum", { signal: 10_001 }, "signal"],
      ["rsi_reversion", { period: 10_001 }, "period"],
      ["bollinger_breakout", { period: 5e8 }, "period"],
      ["volume_surge", { period: 1e6 }, "period"],
      ["tradingview", { validity: 1e9 }, "validity"]
    ]
    for (const [type, params, field] of refusals) {
      const refused = analystSpec(agent({ type, params }), 0, false)
      expect(Either.isLeft(refused) && refused.left, type).toMatchObject({
        field: `agents[0].params.${field}`,
        message: expect.stringContaining(`${field} must be at most 10000 bars`)
      })
    }
    // The bound itself is a window like any other.
    expect(Either.isRight(analystSpec(agent({ type: "sma_crossover", params: { fast: 9_999, slow: 10_000 } }), 0, false))).toBe(true)
    expect(Either.isRight(analystSpec(agent({ type: "bollinger_breakout", params: { period: 10_000 } }), 0, false))).toBe(true)
  })

  it("a model whose look-back its config does not bound: init failing, or one symbol's windows past the cap, is a typed InvalidAgent", () => {
    // A researcher's model whose `period` is a bare Schema.Int, not `period()`: nothing stops 5e9.
    const unbounded: Model<{ readonly period: number }, { readonly ring: Float64Array }> = {
      type: "unbounded_window",
      description: "test model",
      config: Schema.Struct({ period: Schema.optionalWith(Schema.Int, { default: () => 20, exact: true }) }),
      horizon: () => 1,
      init: (config) => ({ ring: new Float64Array(config.period) }),
      update: () => undefined,
      explain: () => ""
    }
    const registry = new Map([...analysts, [unbounded.type, unbounded]])
    const roster = (period: number) =>
      rosterOf({ agents: [agent({ type: "rsi_reversion" }), agent({ type: unbounded.type, name: "wide", params: { period } })], allowShort: false, symbols: ["A"] }, registry)
    const thrown = roster(5_000_000_000)
    expect(Either.isLeft(thrown) && thrown.left).toMatchObject({
      _tag: "InvalidAgent",
      agent: "wide",
      field: "agents[1].params",
      reason: expect.stringMatching(/^unbounded_window cannot set up a symbol's state with these params: Invalid typed array length: 5000000000 \(a look-back may be at most 10000 bars\)$/)
    })
    // Allocated (lazily: no page is touched), but more than a whole run may hold, for one symbol.
    const huge = roster(50_000_000)
    expect(Either.isLeft(huge) && huge.left).toMatchObject({
      agent: "wide",
      field: "agents[1].params",
      reason: "its look-back windows would take 381 MiB for one symbol, more than the 256 MiB a run may hold (a look-back may be at most 10000 bars)"
    })
    expect(Either.isRight(roster(10_000))).toBe(true)
  })

  it("a model whose horizon throws on its params is a typed InvalidAgent naming agents[i].params and the thrown message", () => {
    // A researcher's horizon that divides without a guard: a strategy's params, not an internal error.
    const fragile: Model<{ readonly every: number }, { readonly seen: number }> = {
      type: "fragile_horizon",
      description: "test model",
      config: Schema.Struct({ every: Schema.optionalWith(Schema.Int, { default: () => 5, exact: true }) }),
      horizon: (config) => {
        if (config.every === 0) throw new RangeError("every must not be 0: the horizon divides by it")
        return Math.ceil(10 / config.every)
      },
      init: () => ({ seen: 0 }),
      update: () => undefined,
      explain: () => ""
    }
    const registry = new Map([...analysts, [fragile.type, fragile]])
    const roster = (every: number) =>
      rosterOf({ agents: [agent({ type: "rsi_reversion" }), agent({ type: fragile.type, name: "fragile", params: { every } })], allowShort: false, symbols: ["A"] }, registry)
    const thrown = roster(0)
    expect(Either.isLeft(thrown) && thrown.left).toMatchObject({
      _tag: "InvalidAgent",
      agent: "fragile",
      field: "agents[1].params",
      reason: "fragile_horizon cannot say its opinions' horizon with these params: every must not be 0: the horizon divides by it"
    })
    expect(invalidAgentOf({ agents: [agent({ type: fragile.type, params: { every: 0 } })], allowShort: false, symbols: ["A"] }, registry)).toMatchObject({
      field: "agents[0].params",
      reason: expect.stringContaining("every must not be 0")
    })
    // Its other params are a horizon like any other.
    expect(Either.isRight(roster(2)) && roster(2).pipe(Either.getOrThrow)[1]!.horizon).toBe(5)
  })

  it("a roster whose look-back windows over its symbols pass 256 MiB is refused, naming the largest; the state is measured", () => {
    // Measured from the model's fresh state: an SMA keeps a ring and a running tail per average.
    const sma = analystOf(agent({ type: "sma_crossover", params: { fast: 9_999, slow: 10_000 } }), 0, false)
    expect(Either.isRight(sma) && sma.right.bytesPerSymbol).toBe(2 * 8 * (9_999 + 10_000))
    const rsi = analystOf(agent({ type: "rsi_reversion", params: { period: 10_000 } }), 0, false)
    expect(Either.isRight(rsi) && rsi.right.bytesPerSymbol).toBe(0)
    expect(windowBytes({ a: new Float64Array(10), b: [new Uint8Array(3), { c: new Float64Array(1) }], n: 5 })).toBe(80 + 3 + 8 + 2 * 8)

    const symbols = (n: number) => Array.from({ length: n }, (_, i) => `S${i}`)
    const wide = [
      agent({ type: "sma_crossover", name: "long-sma", params: { fast: 9_999, slow: 10_000 } }),
      agent({ type: "bollinger_breakout", name: "wide-bands", params: { period: 10_000 } }),
      agent({ type: "rsi_reversion" })
    ]
    const refused = rosterOf({ agents: wide, allowShort: false, symbols: symbols(1_000) })
    expect(Either.isLeft(refused) && refused.left).toMatchObject({
      _tag: "InvalidAgent",
      agent: "wide-bands",
      field: "agents",
      reason: "the analysts' look-back windows would take 610 MiB over 1000 symbols (wide-bands 305 MiB, long-sma 305 MiB, rsi_reversion 0.0 MiB), " +
        "more than the 256 MiB a run may hold: trade fewer symbols, or use fewer or shorter look-backs"
    })
    expect(invalidAgentOf({ agents: wide, allowShort: false, symbols: symbols(1_000) })?.field).toBe("agents")
    // The same roster over fewer symbols, and the usual rosters over many, fit.
    expect(Either.isRight(rosterOf({ agents: wide, allowShort: false, symbols: symbols(400) }))).toBe(true)
    const six = ["sma_crossover", "ema_crossover", "rsi_reversion", "bollinger_breakout", "macd_momentum", "volume_surge"].map((type) => agent({ type }))
    expect(Either.isRight(rosterOf({ agents: six, allowShort: false, symbols: symbols(1_000) }))).toBe(true)
    expect(MAX_WINDOW_BYTES).toBe(256 * 1024 * 1024)
  })

  it("a model whose windows fill as bars come (a library's indicator, in a plain array) is counted full, and refused at scale", () => {
    // A researcher's model on trading-signals' SMA, which keeps its window in a plain array that
    // is empty when the state is made: measured fresh, it took nothing, and 1,000 symbols of it
    // with period 10,000 were let through to take gigabytes.
    const Config = Schema.Struct({ period: Schema.Int.pipe(Schema.between(1, 10_000)) }).annotations({ parseOptions: { onExcessProperty: "error" } })
    const library: Model<typeof Config.Type, { sma: SMA; signal: { direction: "long" | "flat"; confidence: number; features: { sma: number } } }, { sma: number }> = {
      type: "library_sma",
      description: "long above a trading-signals SMA",
      config: Config,
      horizon: () => 1,
      init: (config) => ({ sma: new SMA(config.period), signal: { direction: "flat", confidence: 0, features: { sma: 0 } } }),
      update: (state, bar) => {
        const value = state.sma.add(bar.close)
        if (value === null || value === undefined) return undefined
        state.signal.direction = bar.close > Number(value) ? "long" : "flat"
        state.signal.confidence = 0.5
        state.signal.features.sma = Number(value)
        return state.signal
      },
      explain: (signal) => `SMA ${signal.features.sma}`
    }
    const registry = new Map([...analysts, [library.type, library]])
    const one = analystOf(agent({ type: library.type, params: { period: 10_000 } }), 0, false, registry)
    // Its window holds the period's prices, at 8 bytes each (and a little more).
    expect(Either.isRight(one) && one.right.bytesPerSymbol).toBeGreaterThanOrEqual(8 * 10_000)
    expect(Either.isRight(one) && one.right.bytesPerSymbol).toBeLessThan(8 * 10_000 * 2)
    const short = analystOf(agent({ type: library.type, params: { period: 20 } }), 0, false, registry)
    expect(Either.isRight(short) && short.right.bytesPerSymbol).toBeLessThan(8 * 100)
    const symbols = Array.from({ length: 1_000 }, (_, i) => `S${i}`)
    const many = [1, 2, 3, 4].map((i) => agent({ type: library.type, name: `lib-${i}`, params: { period: 10_000 } }))
    const refused = rosterOf({ agents: [...many, ...many.map((a, i) => ({ ...a, name: `more-${i}` }))], allowShort: false, symbols }, registry)
    expect(Either.isLeft(refused) && refused.left).toMatchObject({ _tag: "InvalidAgent", field: "agents", reason: expect.stringContaining("more than the 256 MiB a run may hold") })
    expect(windowBytes({ prices: [1, 2, 3], nested: [{ more: [4, 5] }], map: new Map([["a", 1]]) })).toBe(3 * 8 + 8 + 2 * 8 + 16)
    // A model that throws on the made-up bars is counted as it starts, not refused.
    const touchy = { ...library, type: "touchy", update: () => { throw new Error("not on these bars") } }
    const counted = analystOf(agent({ type: touchy.type, params: { period: 10_000 } }), 0, false, new Map([...analysts, [touchy.type, touchy]]))
    expect(Either.isRight(counted) && counted.right.bytesPerSymbol).toBe(0)
  })
})

describe("an analyst's opinions", () => {
  const model = analysts.get("sma_crossover")!
  const config = Schema.decodeUnknownSync(model.config)({})
  /** The model, counting the rationales it is asked to write. */
  const counting = () => {
    const counter = { explained: 0 }
    const spy: Model<unknown, unknown> = {
      ...model,
      explain: (signal, config, allowShort) => {
        counter.explained++
        return model.explain(signal, config, allowShort)
      }
    }
    return { counter, spy }
  }
  const spawn = (spy: Model<unknown, unknown>, allowShort = false) =>
    Actor.spawn(Analyst.make({ name: "sma" as AgentId, model: spy, config, allowShort }), { name: "sma" })
  /**
   * The first `n` timestamps' replies of the counting analyst, asked as the coordinator does, each
   * handed to `read` before the next request (an opinion is valid until then).
   */
  const answer = (spy: Model<unknown, unknown>, n: number, read: (opinions: ReadonlyArray<Opinion>) => void) =>
    Effect.gen(function*() {
      const ref = yield* spawn(spy)
      for (const request of requests(n)) read(yield* ref.ask(request))
    })
  /** The plain object the opinion stands for, in the schema's field order. */
  const plain = (o: Opinion, allowShort = false): Opinion => ({
    round: o.round,
    agent: o.agent,
    symbol: o.symbol,
    ts: o.ts,
    direction: o.direction,
    confidence: o.confidence,
    horizon: o.horizon,
    rationale: model.explain(o, config, allowShort),
    features: o.features
  })

  it.effect("write their rationale only when it is read, once per request", () =>
    run(Effect.gen(function*() {
      const { counter, spy } = counting()
      const ref = yield* spawn(spy)
      let answered = 0
      for (const request of requests(80)) answered += (yield* ref.ask(request)).length
      expect(answered).toBeGreaterThan(0)
      expect(counter.explained).toBe(0)
      const [first] = yield* ref.ask(requests(81)[80]!)
      expect(first!.rationale).toMatch(/^SMA\(10\) [0-9.]+ (above|below|equal to) SMA\(50\) /)
      expect(first!.rationale).toBe(first!.rationale)
      expect(counter.explained).toBe(1)
    })))

  it.effect("serialize and encode as the plain opinion would, rationale included, fields in the schema's order", () =>
    run(Effect.gen(function*() {
      const { spy } = counting()
      let refused = 0
      let checked = 0
      yield* answer(spy, 120, (opinions) => {
        for (const opinion of opinions) {
          const expected = plain(opinion)
          expect(JSON.stringify(opinion)).toBe(JSON.stringify(expected))
          expect(Object.keys(JSON.parse(JSON.stringify(opinion)))).toEqual(Object.keys(Opinion.fields))
          expect(JSON.stringify(Schema.encodeSync(Opinion)(opinion))).toBe(JSON.stringify(expected))
          expect(Schema.decodeUnknownSync(Opinion)(opinion)).toEqual(expected)
          // `Schema.is` checks own keys by default (exact); the rationale is a getter, so say not exact.
          expect(Schema.is(Opinion, { exact: false })(opinion)).toBe(true)
          expect(opinion.rationale).toBe(expected.rationale)
          expect(Analyst.copyOpinion(opinion)).toEqual(expected)
          if (opinion.rationale.endsWith("; shorting not allowed")) refused++
          checked++
        }
      })
      expect(checked).toBeGreaterThan(0)
      expect(refused).toBeGreaterThan(0)
    })))

  it.effect("are valid until the analyst's next request; copyOpinion keeps one, unchanged by later requests", () =>
    run(Effect.gen(function*() {
      const { counter, spy } = counting()
      const ref = yield* spawn(spy)
      const asked = requests(120)
      for (const request of asked.slice(0, 100)) yield* ref.ask(request)
      const [mine] = yield* ref.ask(asked[100]!)
      const before = mine!.rationale
      const json = JSON.stringify(mine)
      const kept = Analyst.copyOpinion(mine!)
      expect(kept).toEqual(JSON.parse(json))
      expect(kept.features).not.toBe(mine!.features)
      let moved = 0
      for (const request of asked.slice(101)) {
        const [next] = yield* ref.ask(request)
        // The analyst answers the symbol through the same opinion, re-pointed to this bar.
        expect(next).toBe(mine)
        expect(next!.ts).toBe(request.ts)
        const words = counter.explained
        expect(next!.rationale).toBe(model.explain(next!, config, false))
        expect(next!.rationale).toBe(next!.rationale)
        expect(counter.explained).toBe(words + 1) // once for this bar: the re-pointed view forgot the last one's
        if (next!.rationale !== before) moved++
      }
      expect(moved).toBeGreaterThan(0) // the bars did change the opinion…
      expect(JSON.stringify(kept)).toBe(json) // …and not the copy
    })))

  it.effect("a request with two rounds of one symbol answers each with its own bar's values", () =>
    run(Effect.gen(function*() {
      const { spy } = counting()
      const ref = yield* spawn(spy)
      const bars = market.bars.get(symbols[0]!)!
      for (let t = 0; t < 60; t++) {
        yield* ref.ask(new RequestOpinions({ ts: bars[t]!.ts, rounds: [{ round: `A@${t}` as RoundId, bar: bars[t]! }] }))
      }
      // The same state folds both bars in turn: what a lone state says on bars 60 and 61.
      const state = model.init(config, seededDraws("0", "test", "X"))
      const expected = bars.slice(0, 62).map((bar) => {
        const signal = model.update(state, bar, config, false)
        return signal === undefined ? undefined : copySignal(signal)
      }).slice(60)
      const twice = yield* ref.ask(
        new RequestOpinions({
          ts: bars[61]!.ts,
          rounds: [{ round: "A@60" as RoundId, bar: bars[60]! }, { round: "A@61" as RoundId, bar: bars[61]! }]
        })
      )
      expect(twice.map((o) => [o.round, o.direction, o.confidence, { ...o.features }])).toEqual(
        expected.map((s, i) => [`A@${60 + i}`, s!.direction, s!.confidence, s!.features])
      )
      expect(twice[0]!.features).not.toEqual(twice[1]!.features)
    })))
})

describe("an analyst that crashes every Nth message", () => {
  /** A model that throws on every 3rd bar it sees (a stand-in for a flaky model), else says long. */
  const flaky: Model<{}, { seen: number }> = {
    type: "flaky",
    description: "test model",
    config: Schema.Struct({}),
    horizon: () => 1,
    init: () => ({ seen: 0 }),
    update: (state) => {
      state.seen++
      if (state.seen % 3 === 0) throw new Error(`flaky model failed on bar ${state.seen}`)
      return { direction: "long", confidence: 0.5, features: {} }
    },
    explain: () => "always long"
  }

  it.effect("is restarted by its supervisor; the crashing request gets NoReply and later ones are answered", () =>
    run(Effect.gen(function*() {
      const system = yield* ActorSystem.ActorSystem
      const restarts: Array<number> = []
      yield* Stream.runForEach(yield* system.lifecycle, (e) =>
        Effect.sync(() => {
          if (e._tag === "ActorRestarted") restarts.push(e.attempt)
        })).pipe(Effect.forkScoped)
      const ref = yield* Actor.spawn(
        Analyst.make({ name: "flaky" as AgentId, model: flaky, config: {}, allowShort: true }),
        { name: "flaky" }
      )
      const bar = market.bars.get(symbols[0]!)![0]!
      const outcomes: Array<string> = []
      for (let t = 0; t < 9; t++) {
        const request = new RequestOpinions({ ts: bar.ts, rounds: [{ round: `X@${t}` as RoundId, bar }] })
        const answer = yield* Effect.either(ref.ask(request, { timeout: "1 second" }))
        outcomes.push(Either.isRight(answer) ? "answer" : `${answer.left._tag}:${(answer.left as { reason?: string }).reason}`)
        yield* settle()
        yield* TestClock.adjust("100 millis") // past the restart backoff (10, 20, 40 ms)
      }
      expect(outcomes).toEqual([
        "answer", "answer", "NoReply:crashed",
        "answer", "answer", "NoReply:crashed",
        "answer", "answer", "NoReply:crashed"
      ])
      expect(restarts).toEqual([1, 2, 3])
    })))
})
