import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck, ParseResult, Schema } from "effect"
import type { RoundContext } from "../../schemas/AnalystProtocol.js"
import { BriefTracker, INDICATOR_WARMUP } from "../../agents/analysts/MarketBrief.js"
import * as BollingerBreakout from "../../agents/analysts/BollingerBreakout.js"
import * as EmaCrossover from "../../agents/analysts/EmaCrossover.js"
import * as MacdMomentum from "../../agents/analysts/MacdMomentum.js"
import { type AnyModel, copySignal, type Signal } from "../../agents/analysts/Model.js"
import * as RsiReversion from "../../agents/analysts/RsiReversion.js"
import * as SmaCrossover from "../../agents/analysts/SmaCrossover.js"
import * as VolumeSurge from "../../agents/analysts/VolumeSurge.js"
import { analysts, llmAnalysts } from "../../agents/registry.js"
import type { AgentId, RoundId, RunId, Symbol, Timestamp } from "../../schemas/Ids.js"
import { defaultLlmConfig } from "../../schemas/Llm.js"
import { Strategy } from "../../schemas/Strategy.js"
import type { LanguageModel } from "../../src/llm/LanguageModel.js"
import { LlmSession } from "../../src/llm/LlmSession.js"
import * as Offline from "../../src/llm/Offline.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import type { Bar } from "../../schemas/Market.js"
import type { Direction } from "../../schemas/Opinion.js"
import { seededDraws } from "../../agents/analysts/internal/draws.js"

// -- Bars

interface Ohlcv {
  readonly open: number
  readonly high: number
  readonly low: number
  readonly close: number
  readonly volume: number
}

const bar = (i: number, { close, high, low, open, volume }: Ohlcv): Bar => ({
  symbol: "T" as Symbol,
  ts: (i * 86_400_000) as Timestamp,
  open,
  high,
  low,
  close,
  volume
})

/** Bars closing at `closes`, each opening at the previous close, with a constant volume. */
const fromCloses = (closes: ReadonlyArray<number>, volume = 1_000): Array<Bar> =>
  closes.map((close, i) => {
    const open = i === 0 ? close : closes[i - 1]!
    return bar(i, { open, high: Math.max(open, close), low: Math.min(open, close), close, volume })
  })

const series = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i))

// -- Running a model

const decode = (model: AnyModel, params: unknown) => Schema.decodeUnknownSync(model.config)(params)

/** A signal kept past the state's next update must be copied (Model.ts): the model may overwrite it. */
const keep = (signal: Signal | undefined) => (signal === undefined ? undefined : copySignal(signal))

/** Every bar's signal from one fresh state. */
const runAll = (model: AnyModel, config: unknown, bars: ReadonlyArray<Bar>, allowShort = true): Array<Signal | undefined> => {
  const state = model.init(config, seededDraws("0", "test", "X"))
  return bars.map((b) => keep(model.update(state, b, config, allowShort)))
}

const last = <A>(xs: ReadonlyArray<A>): A => xs[xs.length - 1]!

/** A signal's rationale, as the analyst actor writes it when someone reads it. */
const explain = (model: AnyModel, signal: Signal, config: unknown, allowShort = true) => model.explain(signal, config, allowShort)

/** The first issue of a bad config, as the registry reports it (no decode options: the schema's own). */
const firstIssue = (model: AnyModel, params: unknown) => {
  const result = Schema.decodeUnknownEither(model.config, { errors: "first" })(params)
  if (Either.isRight(result)) return undefined
  return ParseResult.ArrayFormatter.formatErrorSync(result.left)[0]
}

// -- The six models, with their defaults, bad configs, warm-ups and a small config for random runs

interface Case {
  readonly model: AnyModel
  readonly defaults: Record<string, number | string>
  /** params → the field the error must name. */
  readonly bad: ReadonlyArray<readonly [unknown, string]>
  /** The index of the first bar with a signal under the default config. */
  readonly firstSignal: number
  readonly small: Record<string, number>
}

const crossoverBad = (fast: number, slow: number): Case["bad"] => [
  [{ fast: 0 }, "fast"],
  [{ fast: 2.5 }, "fast"],
  [{ slow: "fifty" }, "slow"],
  [{ fast: slow, slow: fast }, "fast"],
  [{ fast: 7, slow: 7 }, "fast"],
  [{ fats: 5 }, "fats"]
]

const cases: ReadonlyArray<Case> = [
  {
    model: SmaCrossover.model,
    defaults: { fast: 10, slow: 50, whenEqual: "flat" },
    bad: crossoverBad(10, 50),
    firstSignal: 49,
    small: { fast: 3, slow: 8 }
  },
  {
    model: EmaCrossover.model,
    defaults: { fast: 12, slow: 26, whenEqual: "flat" },
    bad: crossoverBad(12, 26),
    firstSignal: 25,
    small: { fast: 3, slow: 8 }
  },
  {
    model: RsiReversion.model,
    defaults: { period: 14, oversold: 30, overbought: 70 },
    bad: [
      [{ period: 0 }, "period"],
      [{ period: 1.5 }, "period"],
      [{ oversold: 0 }, "oversold"],
      [{ overbought: 100 }, "overbought"],
      [{ oversold: 70, overbought: 30 }, "oversold"],
      [{ oversold: 50, overbought: 50 }, "oversold"],
      [{ threshold: 20 }, "threshold"]
    ],
    firstSignal: 14,
    small: { period: 5, oversold: 30, overbought: 70 }
  },
  {
    model: BollingerBreakout.model,
    defaults: { period: 20, deviations: 2 },
    bad: [
      [{ period: 1 }, "period"],
      [{ period: "20" }, "period"],
      [{ deviations: 0 }, "deviations"],
      [{ deviations: -1 }, "deviations"],
      [{ stdev: 2 }, "stdev"]
    ],
    firstSignal: 19,
    small: { period: 5, deviations: 2 }
  },
  {
    model: MacdMomentum.model,
    defaults: { fast: 12, slow: 26, signal: 9 },
    bad: [
      [{ fast: 0 }, "fast"],
      [{ slow: 26.5 }, "slow"],
      [{ signal: 0 }, "signal"],
      [{ fast: 26, slow: 12 }, "fast"],
      [{ histogram: 1 }, "histogram"]
    ],
    firstSignal: 33,
    small: { fast: 3, slow: 6, signal: 3 }
  },
  {
    model: VolumeSurge.model,
    defaults: { period: 20, multiple: 2 },
    bad: [
      [{ period: 0 }, "period"],
      [{ multiple: 0.5 }, "multiple"],
      [{ multiple: "2x" }, "multiple"],
      [{ ratio: 2 }, "ratio"]
    ],
    firstSignal: 20,
    small: { period: 5, multiple: 2 }
  }
]

// -- Random bars

const arbitraryBars = (minLength: number, maxLength: number) =>
  FastCheck.array(
    FastCheck.record({
      // Returns, with exact zeros now and then so that ties (equal averages, unchanged bars) occur.
      r: FastCheck.oneof(FastCheck.constant(0), FastCheck.double({ min: -0.1, max: 0.1, noNaN: true })),
      gap: FastCheck.oneof(FastCheck.constant(0), FastCheck.double({ min: -0.02, max: 0.02, noNaN: true })),
      volume: FastCheck.oneof(FastCheck.constant(0), FastCheck.integer({ min: 0, max: 5_000_000 }))
    }),
    // size "max": lengths spread over the whole range, so long runs get past the longest warm-up.
    { minLength, maxLength, size: "max" }
  ).map((steps) => {
    let previous = 100
    return steps.map(({ gap, r, volume }, i) => {
      const open = previous * (1 + gap)
      const close = open * (1 + r)
      previous = close
      return bar(i, { open, high: Math.max(open, close) * 1.01, low: Math.min(open, close) * 0.99, close, volume })
    })
  })

/**
 * The signal contract on random bars of `minLength` to `maxLength`, shorting allowed or not: a
 * confidence in [0, 1], finite features, a rationale, no short when shorting is not allowed. How
 * many signals the runs gave (0: none got past the warm-up).
 */
const signalContract = (model: AnyModel, config: ReturnType<typeof decode>, minLength: number, maxLength: number, numRuns: number): number => {
  let signals = 0
  FastCheck.assert(
    FastCheck.property(arbitraryBars(minLength, maxLength), FastCheck.boolean(), (bars, allowShort) => {
      for (const signal of runAll(model, config, bars, allowShort)) {
        if (signal === undefined) continue
        signals++
        // One expect per bad signal, not per check: expect() is slow in a loop of 10⁵ signals.
        const ok = Number.isFinite(signal.confidence) && signal.confidence >= 0 && signal.confidence <= 1 &&
          Object.values(signal.features).every(Number.isFinite) && model.explain(signal, config, allowShort).length > 0 &&
          (allowShort || signal.direction !== "short")
        if (!ok) expect(signal).toBe("a signal with confidence in [0, 1], finite features, a rationale")
      }
    }),
    { numRuns }
  )
  return signals
}

describe("analyst models", () => {
  for (const { bad, defaults, firstSignal, model, small } of cases) {
    describe(model.type, () => {
      it("decodes an empty params object to its documented defaults", () => {
        expect(decode(model, {})).toEqual(defaults)
        const horizon = model.horizon(decode(model, {}))
        expect(Number.isInteger(horizon) && horizon >= 1).toBe(true)
      })

      it("rejects bad params with an error naming the field", () => {
        for (const [params, field] of bad) {
          const issue = firstIssue(model, params)
          expect(issue, JSON.stringify(params)).toBeDefined()
          expect(issue!.path, JSON.stringify(params)).toEqual([field])
        }
      })

      it("names the field and the constraint in its own messages", () => {
        const [params, field] = bad[0]!
        expect(firstIssue(model, params)!.message).toContain(field)
      })

      it("gives nothing while warming up, then a signal on every bar", () => {
        const bars = fromCloses(series(firstSignal + 10, (i) => 100 + i + (i % 3)), 1_000)
        const signals = runAll(model, decode(model, {}), bars)
        expect(signals.slice(0, firstSignal).every((s) => s === undefined)).toBe(true)
        expect(signals.slice(firstSignal).every((s) => s !== undefined)).toBe(true)
      })

      for (const [label, params, minLength, maxLength] of [["a small config", small, 1, 80], ["the defaults", {}, 40, 150]] as const) {
        it(`keeps confidence within [0, 1] and every feature finite on random bars (${label})`, () => {
          const signals = signalContract(model, decode(model, params), minLength, maxLength, 150)
          expect(signals).toBeGreaterThan(0) // the runs got past the warm-up
        })
      }

      it("explains a signal from its features; the flat that replaces a short says why", () => {
        const config = decode(model, small)
        let shorts = 0
        FastCheck.assert(
          FastCheck.property(arbitraryBars(1, 80), (bars) => {
            const allowed = runAll(model, config, bars, true)
            const refused = runAll(model, config, bars, false)
            allowed.forEach((signal, i) => {
              if (signal === undefined) return
              const words = model.explain(signal, config, true)
              const refusedWords = model.explain(refused[i]!, config, false)
              if (signal.direction === "short") shorts++
              const expected = signal.direction === "short" ? `${words}; shorting not allowed` : words
              // expect() only on a failure: it is slow in a loop of thousands of signals.
              if (refusedWords !== expected) expect(refusedWords).toBe(expected)
              if (/undefined|NaN/.test(words)) expect(words).not.toMatch(/undefined|NaN/)
            })
          }),
          { numRuns: 100 }
        )
        expect(shorts).toBeGreaterThan(0)
      })

      it("does not look ahead: the signal at bar t is the same with or without the bars after it", () => {
        const config = decode(model, small)
        let compared = 0
        FastCheck.assert(
          FastCheck.property(
            arbitraryBars(1, 60).chain((bars) => FastCheck.tuple(FastCheck.constant(bars), FastCheck.nat(bars.length - 1))),
            FastCheck.boolean(),
            ([bars, t], allowShort) => {
              const full = runAll(model, config, bars, allowShort)
              const prefix = runAll(model, config, bars.slice(0, t + 1), allowShort)
              expect(last(prefix)).toEqual(full[t])
              if (full[t] !== undefined) compared++
            }
          ),
          { numRuns: 200 }
        )
        expect(compared).toBeGreaterThan(0)
      })

      it("is deterministic: two fresh states fed the same bars give identical signals", () => {
        const config = decode(model, small)
        FastCheck.assert(
          FastCheck.property(arbitraryBars(1, 80), (bars) => {
            expect(runAll(model, config, bars)).toEqual(runAll(model, config, bars))
          }),
          { numRuns: 100 }
        )
      })

      it("keeps one state per symbol: interleaving another symbol's bars changes nothing", () => {
        const config = decode(model, small)
        const bars = fromCloses(series(40, (i) => 100 + 10 * Math.sin(i / 3) + i / 5))
        const alone = runAll(model, config, bars)
        const mine = model.init(config, seededDraws("0", "test", "X"))
        const other = model.init(config, seededDraws("0", "test", "X"))
        const interleaved = bars.map((b, i) => {
          model.update(other, { ...b, close: 50 + i, open: 50 }, config, true)
          return keep(model.update(mine, b, config, true))
        })
        expect(interleaved).toEqual(alone)
      })

      it("reuses its signal: valid until the state's next update; copySignal keeps one", () => {
        const config = decode(model, small)
        const bars = fromCloses(series(60, (i) => 100 + 10 * Math.sin(i / 3) + i / 5), 1_000)
        const expected = runAll(model, config, bars)
        const state = model.init(config, seededDraws("0", "test", "X"))
        const other = model.init(config, seededDraws("0", "test", "X"))
        let given: Signal | undefined
        const kept: Array<readonly [number, Signal]> = []
        bars.forEach((b, i) => {
          const signal = model.update(state, b, config, true)
          if (signal === undefined) return
          // The same object, features included, on every bar of the state, holding this bar's values.
          if (given !== undefined) {
            expect(signal).toBe(given)
            expect(signal.features).toBe(given.features)
          }
          given = signal
          expect(signal).toEqual(expected[i])
          const copy = copySignal(signal)
          expect(copy).toEqual(signal)
          expect(copy.features).not.toBe(signal.features)
          kept.push([i, copy])
          // Another state's update leaves it alone.
          model.update(other, { ...b, close: b.close * 2 }, config, true)
          expect(signal).toEqual(expected[i])
        })
        expect(kept.length).toBeGreaterThan(10)
        // The copies still hold their own bars' values, after every later update.
        for (const [i, copy] of kept) expect(copy).toEqual(expected[i])
        expect(new Set(kept.map(([, copy]) => JSON.stringify(copy))).size).toBeGreaterThan(1)
      })
    })
  }
})

// -- Every model the registry has, a researcher's new one included: the contract, from its defaults

describe("every registered model (agents/registry.ts), under its default config", () => {
  for (const [type, model] of analysts) {
    // A model that reads outside signals (`observe`) may say nothing without them: random bars
    // must still get the others past their warm-up.
    const speaks = model.observe === undefined
    describe(type, () => {
      const config = decode(model, {})

      it("keeps confidence within [0, 1], every feature finite, a rationale, and no short when shorting is not allowed", () => {
        const signals = signalContract(model, config, 1, 300, 60)
        if (speaks) expect(signals).toBeGreaterThan(0)
      })

      it("does not look ahead, and is deterministic: the signal at bar t is the same with or without the bars after it, run after run", () => {
        let compared = 0
        FastCheck.assert(
          FastCheck.property(
            arbitraryBars(1, 300).chain((bars) => FastCheck.tuple(FastCheck.constant(bars), FastCheck.nat(bars.length - 1))),
            FastCheck.boolean(),
            ([bars, t], allowShort) => {
              const full = runAll(model, config, bars, allowShort)
              expect(runAll(model, config, bars, allowShort)).toEqual(full)
              expect(last(runAll(model, config, bars.slice(0, t + 1), allowShort))).toEqual(full[t])
              if (full[t] !== undefined) compared++
            }
          ),
          { numRuns: 100 }
        )
        if (speaks) expect(compared).toBeGreaterThan(0)
      })
    })
  }
})

// -- Every LLM analyst type the registry has: its offline fallback is deterministic

/**
 * One round of `kind`'s thinking about the brief of `bars` with the offline model, from a fresh
 * session: everything it gave, as one string — its judgement, its reasoning, every call as
 * recorded and every offline answer (each asked for twice, which must agree).
 */
const offlineThinking = (type: string, bars: ReadonlyArray<Bar>, allowShort: boolean, context: RoundContext | undefined) =>
  Effect.gen(function*() {
    const kind = llmAnalysts.get(type)!
    const config = Schema.decodeUnknownSync(kind.config)({})
    const tracker = new BriefTracker(config.bars)
    for (const b of bars) tracker.update(b)
    const brief = tracker.brief(context)
    const offline = Offline.make()
    const answers: Array<string> = []
    const model: LanguageModel["Type"] = {
      ...offline,
      chat: (request) => {
        const [once, again] = [JSON.stringify(request.offline()), JSON.stringify(request.offline())]
        answers.push(once === again ? once : `not the same twice: ${once} then ${again}`)
        return offline.chat(request)
      }
    }
    const calls: Array<string> = []
    const session = new LlmSession({ run: "run" as RunId, config: defaultLlmConfig, model, onCall: (call) => void calls.push(JSON.stringify(call)) })
    const reasons: Array<string> = []
    const agent = type as AgentId
    const round = `T@${bars.at(-1)!.ts}` as RoundId
    const judgement = yield* kind.think({
      agent,
      round,
      brief,
      config,
      allowShort,
      session: session.forRound(agent, round, new Set<object>(kind.answers)),
      reason: (order, reasoning, role, text) => void reasons.push(JSON.stringify([order, reasoning, role, text]))
    })
    return JSON.stringify({ judgement: judgement ?? null, reasons, calls, answers })
  })

const arbitraryContext = FastCheck.option(
  FastCheck.record({
    target: FastCheck.constantFrom("long" as const, "short" as const, "flat" as const),
    decisions: FastCheck.array(
      FastCheck.record({
        ts: FastCheck.integer({ min: 0, max: 2_000_000_000_000 }).map((n) => n as Timestamp),
        action: FastCheck.constantFrom("long" as const, "short" as const, "flat" as const, "hold" as const),
        confidence: FastCheck.double({ min: 0, max: 1, noNaN: true })
      }),
      { maxLength: 5 }
    )
  }),
  { nil: undefined }
)

describe("every registered LLM analyst type (agents/registry.ts), offline, under its default config", () => {
  for (const [type] of llmAnalysts) {
    describe(type, () => {
      const { bars } = Schema.decodeUnknownSync(llmAnalysts.get(type)!.config)({}) as { readonly bars: number }

      it("answers the same brief byte for byte twice: its judgement, its reasoning, every call and every offline answer", async () => {
        let judged = 0
        await FastCheck.assert(
          FastCheck.asyncProperty(arbitraryBars(Math.max(bars, INDICATOR_WARMUP), 260), FastCheck.boolean(), arbitraryContext, async (bars, allowShort, context) => {
            const first = await Effect.runPromise(offlineThinking(type, bars, allowShort, context))
            const second = await Effect.runPromise(offlineThinking(type, bars, allowShort, context))
            expect(second).toBe(first)
            expect(first).not.toContain("not the same twice")
            if (!first.startsWith(`{"judgement":null`)) judged++
          }),
          { numRuns: 60 }
        )
        expect(judged).toBeGreaterThan(0)
      })

      it("gives two backtests the same checksum, with another run between them", async () => {
        const strategy = (agents: ReadonlyArray<unknown>) =>
          Schema.decodeUnknownSync(Strategy)({
            name: `offline ${type}`,
            symbols: ["AAA", "BBB"],
            allowShort: true,
            agents,
            sizing: { mode: "percent_of_equity", value: 10 }
          })
        const feed = (seed: number) => Feed.synthetic({ ...Synthetic.defaults, seed, symbols: ["AAA", "BBB"] as never, bars: 90 })
        const run = (agents: ReadonlyArray<unknown>, seed: number) => Effect.runPromise(Backtest.run({ strategy: strategy(agents), feed: feed(seed) }))
        await FastCheck.assert(
          FastCheck.asyncProperty(FastCheck.integer({ min: 1, max: 1_000_000 }), async (seed) => {
            const agents = [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type }]
            const first = await run(agents, seed)
            // Another run of the type in the same process between them: nothing carried over.
            await run([{ type, name: "other" }], seed + 1)
            const second = await run(agents, seed)
            expect(first.status).toBe("completed")
            expect(second.checksum).toBe(first.checksum)
          }),
          { numRuns: 3 }
        )
      }, 120_000)
    })
  }
})

// -- The documented rules, on hand-built sequences

const rising = fromCloses(series(80, (i) => 100 + i))
const falling = fromCloses(series(80, (i) => 200 - i))
const constant = fromCloses(series(80, () => 100))

describe("sma_crossover and ema_crossover", () => {
  for (const [model, label] of [[SmaCrossover.model, "SMA"], [EmaCrossover.model, "EMA"]] as const) {
    const config = decode(model, {})

    it(`${label}: long on a rising series, with confidence min(1, gap / 2%)`, () => {
      const signal = last(runAll(model, config, rising))!
      expect(signal.direction).toBe("long")
      const { fast, gap, slow } = signal.features
      expect(fast).toBeGreaterThan(slow!)
      expect(gap).toBeCloseTo((fast! - slow!) / slow!, 12)
      expect(signal.confidence).toBeCloseTo(Math.min(1, gap! / 0.02), 12)
      expect(explain(model, signal, config)).toMatch(new RegExp(`^${label}\\(${config.fast}\\) [0-9.]+ above ${label}\\(${config.slow}\\) [0-9.]+ by [0-9.]+%$`))
    })

    it(`${label}: short on a falling series, flat with the same confidence when shorting is not allowed`, () => {
      const short = last(runAll(model, config, falling, true))!
      const flat = last(runAll(model, config, falling, false))!
      expect(short.direction).toBe("short")
      expect(flat.direction).toBe("flat")
      expect(flat.confidence).toBe(short.confidence)
      expect(short.confidence).toBeGreaterThan(0)
    })

    it(`${label}: flat with confidence 1 when the averages are equal`, () => {
      const signal = last(runAll(model, config, constant))!
      expect(signal).toMatchObject({ direction: "flat", confidence: 1 })
    })

    it(`${label}: a small gap gives a proportionally small confidence`, () => {
      // Closes rising by 0.01 a bar from 100: the gap is far below 2%.
      const signal = last(runAll(model, config, fromCloses(series(80, (i) => 100 + 0.01 * i))))!
      expect(signal.direction).toBe("long")
      expect(signal.confidence).toBeGreaterThan(0)
      expect(signal.confidence).toBeLessThan(0.5)
    })

    it(`${label}: its horizon is the fast period`, () => {
      expect(model.horizon(config)).toBe(config.fast)
    })
  }
})

describe("rsi_reversion", () => {
  const model = RsiReversion.model
  const config = decode(model, {})
  /** 30 bars oscillating around 100, then `tail`. */
  const choppyThen = (tail: ReadonlyArray<number>) => fromCloses([...series(30, (i) => 100 + (i % 2 === 0 ? 1 : -1)), ...tail])

  it("long after a sharp drop, confidence (oversold − RSI) / oversold", () => {
    const signal = last(runAll(model, config, choppyThen([96, 92, 88, 84, 80])))!
    expect(signal.direction).toBe("long")
    const rsi = signal.features.rsi!
    expect(rsi).toBeLessThan(30)
    expect(signal.confidence).toBeCloseTo((30 - rsi) / 30, 12)
    expect(explain(model, signal, config)).toContain(`RSI(14) ${rsi.toFixed(2)} below oversold 30`)
  })

  it("short after a sharp rise (RSI 100 on a straight rise: confidence 1), flat when shorting is not allowed", () => {
    const short = last(runAll(model, config, rising, true))!
    expect(short).toMatchObject({ direction: "short", confidence: 1 })
    expect(short.features.rsi).toBe(100)
    const flat = last(runAll(model, config, rising, false))!
    expect(flat).toMatchObject({ direction: "flat", confidence: 1 })
  })

  it("flat between the thresholds, most sure midway", () => {
    const signal = last(runAll(model, config, choppyThen([])))!
    expect(signal.direction).toBe("flat")
    const rsi = signal.features.rsi!
    expect(rsi).toBeGreaterThan(30)
    expect(rsi).toBeLessThan(70)
    expect(signal.confidence).toBeCloseTo(Math.min(rsi - 30, 70 - rsi) / 20, 12)
  })

  it("a price that does not move is not overbought: read as RSI 50, flat midway, never a short", () => {
    // A halted symbol printing one close bar after bar: no gain and no loss, an RSI of 0 ÷ 0 that
    // the indicator's convention calls 100 (it called a short at confidence 1).
    const still = fromCloses(series(40, () => 100))
    for (const allowShort of [true, false]) {
      const signal = last(runAll(model, config, still, allowShort))!
      expect(signal).toMatchObject({ direction: "flat", confidence: 1 })
      expect(signal.features.rsi).toBe(50)
      expect(explain(model, signal, config)).toBe("RSI(14) 50.00 between 30 and 70")
    }
    // A rise, then a pause: the averages still hold the rise, and the RSI is the indicator's.
    const paused = last(runAll(model, config, fromCloses([...series(20, (i) => 100 + i), ...series(5, () => 119)]), true))!
    expect(paused).toMatchObject({ direction: "short" })
    expect(paused.features.rsi).toBe(100)
  })

  it("honours custom thresholds", () => {
    const lenient = decode(model, { oversold: 45, overbought: 55 })
    const bars = choppyThen([98, 97, 96])
    const signal = last(runAll(model, lenient, bars))!
    expect(signal.features.rsi).toBeLessThan(45)
    expect(signal.direction).toBe("long")
    expect(last(runAll(model, config, bars))!.direction).toBe("flat") // the same RSI is not oversold at 30
  })
})

describe("bollinger_breakout", () => {
  const model = BollingerBreakout.model
  const config = decode(model, {})
  const choppyThen = (tail: ReadonlyArray<number>) => fromCloses([...series(25, (i) => (i % 2 === 0 ? 100 : 101)), ...tail])

  it("long when the close is above the upper band, confidence the distance in half widths", () => {
    const signal = last(runAll(model, config, choppyThen([104])))!
    expect(signal.direction).toBe("long")
    const { close, middle, upper } = signal.features
    expect(close).toBeGreaterThan(upper!)
    expect(signal.confidence).toBeCloseTo(Math.min(1, (close! - upper!) / (upper! - middle!)), 12)
    expect(signal.confidence).toBeGreaterThan(0)
    expect(signal.confidence).toBeLessThan(1)
    expect(last(runAll(model, config, choppyThen([130])))!).toMatchObject({ direction: "long", confidence: 1 })
  })

  it("short below the lower band, flat with the same confidence when shorting is not allowed", () => {
    const short = last(runAll(model, config, choppyThen([97])))!
    expect(short.direction).toBe("short")
    expect(short.features.close).toBeLessThan(short.features.lower!)
    const flat = last(runAll(model, config, choppyThen([97]), false))!
    expect(flat).toMatchObject({ direction: "flat", confidence: short.confidence })
  })

  it("flat inside the bands; certain when the bands have no width", () => {
    const inside = last(runAll(model, config, choppyThen([100.5])))!
    expect(inside.direction).toBe("flat")
    expect(inside.confidence).toBeGreaterThan(0.9)
    expect(last(runAll(model, config, constant))!).toMatchObject({ direction: "flat", confidence: 1 })
  })
})

describe("macd_momentum", () => {
  const model = MacdMomentum.model
  const config = decode(model, {})

  it("long on an accelerating rise (histogram > 0), confidence min(1, |histogram| / close / 0.5%)", () => {
    const bars = fromCloses(series(60, (i) => 100 + 0.02 * i * i))
    const signal = last(runAll(model, config, bars))!
    expect(signal.direction).toBe("long")
    const { close, histogram, macd, signal: line } = signal.features
    expect(histogram).toBeGreaterThan(0)
    expect(histogram).toBeCloseTo(macd! - line!, 12)
    expect(signal.confidence).toBeCloseTo(Math.min(1, histogram! / close! / 0.005), 12)
  })

  it("short on an accelerating fall, flat with the same confidence when shorting is not allowed", () => {
    const bars = fromCloses(series(60, (i) => 200 - 0.02 * i * i))
    const short = last(runAll(model, config, bars))!
    expect(short.direction).toBe("short")
    expect(short.features.histogram).toBeLessThan(0)
    expect(last(runAll(model, config, bars, false))!).toMatchObject({ direction: "flat", confidence: short.confidence })
  })

  it("flat on a constant series (no histogram), and its horizon is the signal period", () => {
    expect(last(runAll(model, config, constant))!).toMatchObject({ direction: "flat", confidence: 1 })
    expect(model.horizon(config)).toBe(9)
  })
})

describe("volume_surge", () => {
  const model = VolumeSurge.model
  const config = decode(model, {})
  /** 20 quiet bars of volume 1000, then one bar with `volume` from `open` to `close`. */
  const quietThen = (volume: number, open: number, close: number) => [
    ...fromCloses(series(20, () => 100), 1_000),
    bar(20, { open, high: Math.max(open, close), low: Math.min(open, close), close, volume })
  ]

  it("long on a volume spike on an up bar, confidence min(1, ratio / (2 × multiple))", () => {
    const signal = last(runAll(model, config, quietThen(3_000, 100, 102)))!
    expect(signal).toMatchObject({ direction: "long", confidence: 0.75 })
    expect(signal.features).toEqual({ volume: 3_000, average: 1_000, ratio: 3, change: 2 })
    expect(explain(model, signal, config)).toBe("volume 3000 surged 3.00× its 20-bar average 1000 on an up bar")
    expect(last(runAll(model, config, quietThen(9_000, 100, 102)))!.confidence).toBe(1)
    expect(last(runAll(model, config, quietThen(2_000, 100, 102)))!.confidence).toBe(0.5) // exactly the threshold
  })

  it("short on a spike on a down bar, flat when shorting is not allowed; flat on an unchanged bar", () => {
    expect(last(runAll(model, config, quietThen(3_000, 102, 100)))!).toMatchObject({ direction: "short", confidence: 0.75 })
    expect(last(runAll(model, config, quietThen(3_000, 102, 100), false))!).toMatchObject({ direction: "flat", confidence: 0.75 })
    expect(last(runAll(model, config, quietThen(3_000, 100, 100)))!).toMatchObject({ direction: "flat", confidence: 0.75 })
  })

  it("flat with low confidence without a surge", () => {
    const signal = last(runAll(model, config, quietThen(1_900, 100, 102)))!
    expect(signal).toMatchObject({ direction: "flat", confidence: VolumeSurge.QUIET_CONFIDENCE })
  })

  it("after bars of no volume, any volume is a surge; none is not", () => {
    const silentThen = (volume: number) => [...fromCloses(series(20, () => 100), 0), bar(20, { open: 100, high: 101, low: 100, close: 101, volume })]
    expect(last(runAll(model, config, silentThen(10)))!).toMatchObject({ direction: "long", confidence: 1 })
    expect(last(runAll(model, config, silentThen(0)))!).toMatchObject({ direction: "flat", confidence: VolumeSurge.QUIET_CONFIDENCE })
  })
})

describe("rationales: each model words a signal from its features and config", () => {
  const say = (model: AnyModel, params: unknown, direction: Direction, features: Record<string, number>, allowShort = true) =>
    model.explain({ direction, confidence: 0.5, features }, decode(model, params), allowShort)

  it("sma_crossover and ema_crossover: both averages with their periods, and the gap", () => {
    expect(say(SmaCrossover.model, {}, "long", { fast: 101.234, slow: 99.5, gap: 0.017427 }))
      .toBe("SMA(10) 101.23 above SMA(50) 99.50 by 1.74%")
    const fall = { fast: 98, slow: 100, gap: -0.02 }
    expect(say(EmaCrossover.model, { fast: 5, slow: 20 }, "short", fall)).toBe("EMA(5) 98.00 below EMA(20) 100.00 by 2.00%")
    expect(say(EmaCrossover.model, { fast: 5, slow: 20 }, "flat", fall, false))
      .toBe("EMA(5) 98.00 below EMA(20) 100.00 by 2.00%; shorting not allowed")
    expect(say(SmaCrossover.model, {}, "flat", { fast: 100, slow: 100, gap: 0 })).toBe("SMA(10) 100.00 equal to SMA(50) 100.00")
  })

  it("rsi_reversion: the RSI with its period, against the threshold it crossed", () => {
    const levels = { oversold: 30, overbought: 70 }
    expect(say(RsiReversion.model, {}, "long", { rsi: 21.456, ...levels })).toBe("RSI(14) 21.46 below oversold 30")
    expect(say(RsiReversion.model, {}, "short", { rsi: 83.2, ...levels })).toBe("RSI(14) 83.20 above overbought 70")
    expect(say(RsiReversion.model, {}, "flat", { rsi: 83.2, ...levels }, false)).toBe("RSI(14) 83.20 above overbought 70; shorting not allowed")
    expect(say(RsiReversion.model, { period: 5, oversold: 25, overbought: 75 }, "flat", { rsi: 50, oversold: 25, overbought: 75 }))
      .toBe("RSI(5) 50.00 between 25 and 75")
  })

  it("bollinger_breakout: the close against the band it broke, or both bands", () => {
    const bands = { lower: 99.5, middle: 100.5, upper: 101.5 }
    expect(say(BollingerBreakout.model, {}, "long", { close: 104, ...bands })).toBe("close 104.00 above upper BB(20, 2) band 101.50")
    expect(say(BollingerBreakout.model, { deviations: 2.5 }, "short", { close: 97, ...bands })).toBe("close 97.00 below lower BB(20, 2.5) band 99.50")
    expect(say(BollingerBreakout.model, {}, "flat", { close: 97, ...bands }, false))
      .toBe("close 97.00 below lower BB(20, 2) band 99.50; shorting not allowed")
    expect(say(BollingerBreakout.model, {}, "flat", { close: 100.25, ...bands })).toBe("close 100.25 inside BB(20, 2) bands 99.50–101.50")
  })

  it("macd_momentum: the MACD line, its signal line and the histogram as a share of the price", () => {
    expect(say(MacdMomentum.model, {}, "long", { macd: 1.23456, signal: 1, histogram: 0.23456, close: 100 }))
      .toBe("MACD(12, 26, 9) 1.2346 above signal 1.0000, histogram 0.2346 (0.235% of price)")
    const fall = { macd: -0.5, signal: -0.25, histogram: -0.25, close: 50 }
    expect(say(MacdMomentum.model, {}, "short", fall)).toBe("MACD(12, 26, 9) -0.5000 below signal -0.2500, histogram -0.2500 (-0.500% of price)")
    expect(say(MacdMomentum.model, {}, "flat", fall, false))
      .toBe("MACD(12, 26, 9) -0.5000 below signal -0.2500, histogram -0.2500 (-0.500% of price); shorting not allowed")
    expect(say(MacdMomentum.model, {}, "flat", { macd: 0, signal: 0, histogram: 0, close: 100 })).toBe("MACD(12, 26, 9) 0.0000 on its signal line")
  })

  it("volume_surge: the volume against its average, and which way the bar moved", () => {
    const surge = { volume: 3_000, average: 1_000, ratio: 3 }
    const surged = "volume 3000 surged 3.00× its 20-bar average 1000"
    expect(say(VolumeSurge.model, {}, "long", { ...surge, change: 2 })).toBe(`${surged} on an up bar`)
    expect(say(VolumeSurge.model, {}, "short", { ...surge, change: -2 })).toBe(`${surged} on a down bar`)
    expect(say(VolumeSurge.model, {}, "flat", { ...surge, change: -2 }, false)).toBe(`${surged} on a down bar; shorting not allowed`)
    expect(say(VolumeSurge.model, {}, "flat", { ...surge, change: 0 })).toBe(`${surged} on an unchanged bar`)
    expect(say(VolumeSurge.model, {}, "flat", { volume: 1_900, average: 1_000, ratio: 1.9, change: 2 }))
      .toBe("volume 1900 is 1.90× its 20-bar average 1000, below 2×")
    expect(say(VolumeSurge.model, {}, "long", { volume: 10, average: 0, change: 1 })).toBe("volume 10 surged after no volume on an up bar")
    expect(say(VolumeSurge.model, {}, "flat", { volume: 0, average: 0, change: 0 })).toBe("volume 0 is after no volume, below 2×")
  })
})

describe("crossover ties", () => {
  it("whenEqual abstain gives no opinion when the averages are equal; flat (default) gives flat", async () => {
    const { model } = await import("../../agents/analysts/SmaCrossover.js")
    const { Schema } = await import("effect")
    const bar = (close: number, i: number) => ({ symbol: "X", ts: i, open: close, high: close, low: close, close, volume: 1 }) as never
    const run = (params: object) => {
      const config = Schema.decodeUnknownSync(model.config)(params)
      const state = model.init(config, seededDraws("0", "test", "X"))
      return Array.from({ length: 6 }, (_, i) => {
        const signal = model.update(state, bar(10, i), config, true)
        return signal === undefined ? undefined : copySignal(signal)
      })
    }
    expect(run({ fast: 2, slow: 4 }).at(-1)).toMatchObject({ direction: "flat", confidence: 1 })
    expect(run({ fast: 2, slow: 4, whenEqual: "abstain" }).at(-1)).toBeUndefined()
    expect(() => Schema.decodeUnknownSync(model.config)({ whenEqual: "maybe" })).toThrow(/whenEqual/)
  })
})
