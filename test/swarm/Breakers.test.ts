/**
 * The daily loss breaker and the drawdown halt in whole runs (the real coordinator, risk officer,
 * desk and ledger; a scripted analyst): they trip on the bar whose marks cross their limit, an
 * intent judged there or not, and the change is recorded at a fixed point of that bar's events
 * (RunLog.holdTransition). A run recorded before that (its `RunStarted` without `breakers`) is
 * re-executed as it was: the breakers checked only as intents are judged.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import type { Direction } from "../../schemas/Opinion.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { ofTag, record, registryOf } from "./recorded.js"

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)
const dayOf = (ts: number) => Math.round((ts - START) / DAY)


/** `n` times `direction`, then `then`. */
const say = (n: number, direction: Direction, then: Direction): Array<Direction> => [...Array.from({ length: n }, () => direction), then]

/** Daily bars of one symbol from 2024-01-01 at these closes, each opening at the close before it. */
const series = (symbol: string, closes: ReadonlyArray<number>): Array<Bar> =>
  closes.map((close, i) => {
    const open = i === 0 ? close : closes[i - 1]!
    return {
      symbol: symbol as Bar["symbol"],
      ts: (START + i * DAY) as Bar["ts"],
      open,
      high: Math.max(open, close),
      low: Math.min(open, close),
      close,
      volume: 1_000
    }
  })
const feedOf = (...all: ReadonlyArray<ReadonlyArray<Bar>>) =>
  Feed.fromBars(new Map(all.map((bars) => [bars[0]!.symbol, bars])), { fingerprint: "test:breakers" })

const strategyOf = (symbols: ReadonlyArray<string>) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "breakers",
    symbols,
    initialCash: "100000",
    allowShort: false,
    agents: [{ type: "test_script" }],
    // Half the equity in one position (the hard cap): it falls twice as fast as the price does.
    sizing: { mode: "percent_of_equity", value: 50 },
    execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }
  })

/**
 * AAA: bought on bar 0 (500 at 100, filled at bar 1's open), then down 4 a bar — at most 2.7 % of
 * equity a day, under the daily loss limit — to 48 on bar 14: equity 74,000, 26 % below its peak of
 * 100,000 (the limit is 25 %). The script stays long (no intent) until it says flat on bar 18.
 */
const FALLING = [100, 100, 96, 92, 88, 84, 80, 76, 72, 68, 64, 60, 56, 52, 48, 48, 48, 47, 47, 47, 47]
const CROSSED = 14
const FLAT_AT = 18

/** AAA: bought on bar 0, down 12 % on bar 2 (equity down 6 %: the daily limit is 5 %), then flat in price; sold on bar 6. */
const DROP = [100, 100, 88, 88, 88, 88, 88, 88, 88]
const DROPPED = 2


/** Each trading-state change as [bar, from, to, cause], the bar its event was recorded on. */
const moves = (events: ReadonlyArray<RunEvent>) =>
  ofTag(events, "TradingStateChanged").map((e) => [dayOf(e.at), e.transition.from, e.transition.to, e.transition.cause] as const)

const falling = (options: Partial<Backtest.Options> = {}) =>
  record({ strategy: strategyOf(["AAA"]), feed: feedOf(series("AAA", FALLING)), registry: registryOf({ AAA: say(FLAT_AT, "long", "flat") }), ...options })

describe("the drawdown halt", () => {
  it.effect("trips on the bar whose marks cross it, with no intent judged there: TradingStateChanged lands on that bar", () =>
    Effect.gen(function*() {
      const { events, result } = yield* falling()
      expect(ofTag(events, "RunStarted")[0]!.breakers).toBe("marks")
      // One order (the buy); nothing decided between it and bar 18 (whose refused sale is offered again on every bar after).
      expect(ofTag(events, "DecisionMade").map((e) => dayOf(e.decision.ts))).toEqual([0, FLAT_AT, FLAT_AT + 1, FLAT_AT + 2])
      expect(moves(events)).toEqual([[CROSSED, "active", "halted", "drawdown_halt"]])
      const changed = ofTag(events, "TradingStateChanged")[0]!
      expect(changed.transition).toEqual({
        from: "active",
        to: "halted",
        cause: "drawdown_halt",
        at: START + CROSSED * DAY,
        reason: "equity 74000 is 26% below its peak of 100000 (limit 25%): trading halts",
        actor: null
      })
      // The halt holds: a new day does not lift it, and the sale on bar 18 is refused.
      const sale = ofTag(events, "VerdictGiven").find((v) => dayOf(v.verdict.intent.ts) === FLAT_AT)!.verdict
      expect(sale).toMatchObject({ outcome: "rejected", state: "halted", transition: null })
      expect(result.tradingState).toBe("halted")
      expect(result.counts.orders).toBe(1)
    }))

  it.effect("a run recorded before (no breakers in its RunStarted) is re-executed as it was: halted only when the next intent is judged", () =>
    Effect.gen(function*() {
      const before = yield* falling({ recordedStart: {} })
      expect(ofTag(before.events, "RunStarted")[0]!.breakers).toBeUndefined()
      expect(moves(before.events)).toEqual([[FLAT_AT, "active", "halted", "drawdown_halt"]])
      const sale = ofTag(before.events, "VerdictGiven").find((v) => dayOf(v.verdict.intent.ts) === FLAT_AT)!.verdict
      expect(sale).toMatchObject({ outcome: "rejected", state: "halted", transition: { from: "active", to: "halted" } })
      // Re-executed again, byte for byte.
      const again = yield* falling({ recordedStart: {} })
      expect(again.lines).toEqual(before.lines)
      // And the new run differs from it only from the flag and the crossing bar on.
      const now = yield* falling()
      expect(now.result.checksum).not.toBe(before.result.checksum)
      // (The flags of the other behaviours new runs name, which the run before names none of, taken out too.)
      const strip = (lines: ReadonlyArray<string>) =>
        lines.map((line) => line.replace(/,"(breakers|reducedIntents|flatScoring|lastRounds)":"[a-z_]+"/g, ""))
      const firstChange = now.events.findIndex((e) => e._tag === "TradingStateChanged")
      expect(strip(now.lines.slice(0, firstChange))).toEqual(before.lines.slice(0, firstChange))
    }))

  it.effect("is deterministic: two runs give the same events, byte for byte, in a backtest and in a paper run", () =>
    Effect.gen(function*() {
      for (const mode of ["backtest", "paper"] as const) {
        const a = yield* falling({ mode })
        const b = yield* falling({ mode })
        expect(b.lines).toEqual(a.lines)
        expect(b.result.checksum).toBe(a.result.checksum)
        expect(moves(a.events)).toEqual([[CROSSED, "active", "halted", "drawdown_halt"]])
      }
    }))

  it.effect("on a bar that also judges an intent, the change is recorded before the verdicts, which are judged halted", () =>
    Effect.gen(function*() {
      // BBB is bought on bar 0 too, and sold on the crossing bar.
      const flatBbb = series("BBB", FALLING.map(() => 50))
      const registry = registryOf({ AAA: say(FLAT_AT, "long", "flat"), BBB: say(CROSSED, "long", "flat") })
      const strategy = Schema.decodeUnknownSync(Strategy)({
        ...Schema.encodeSync(Strategy)(strategyOf(["AAA", "BBB"])),
        sizing: { mode: "percent_of_equity", value: 45 }
      })
      // 450 AAA and 900 BBB: down 21.6 % by bar 13 (AAA at 52, BBB flat at 50), and 27 % on bar 14,
      // where AAA falls to 40.
      const aaa = series("AAA", FALLING.map((close, i) => (i >= CROSSED ? 40 : close)))
      const run = () => record({ strategy, feed: feedOf(aaa, flatBbb), registry })
      const { events, lines } = yield* run()
      expect(moves(events)).toEqual([[CROSSED, "active", "halted", "drawdown_halt"]])
      const at = events.findIndex((e) => e._tag === "TradingStateChanged")
      const verdict = events.findIndex((e) => e._tag === "VerdictGiven" && dayOf(e.verdict.intent.ts) === CROSSED)
      // After the bar's decision, before its verdict (the place the state's check always had).
      expect(events[at - 1]).toMatchObject({ _tag: "DecisionMade", decision: { symbol: "BBB", action: "flat" } })
      expect(verdict).toBe(at + 1)
      expect((events[verdict] as Extract<RunEvent, { _tag: "VerdictGiven" }>).verdict).toMatchObject({
        outcome: "rejected",
        state: "halted",
        transition: null
      })
      expect((yield* run()).lines).toEqual(lines)
    }))
})

describe("the daily loss breaker", () => {
  const dropping = (options: Partial<Backtest.Options> = {}) =>
    record({ strategy: strategyOf(["AAA"]), feed: feedOf(series("AAA", DROP)), registry: registryOf({ AAA: say(6, "long", "flat") }), ...options })

  it.effect("moves trading to reducing on the bar whose marks cross it, and a new trading day lifts it on that day's first bar", () =>
    Effect.gen(function*() {
      const { events, result } = yield* dropping()
      expect(ofTag(events, "DecisionMade").map((e) => dayOf(e.decision.ts))).toEqual([0, 6])
      expect(moves(events)).toEqual([
        [DROPPED, "active", "reducing", "daily_loss_breaker"],
        [DROPPED + 1, "reducing", "active", "new_trading_day"]
      ])
      expect(ofTag(events, "TradingStateChanged")[0]!.transition.reason).toBe(
        "equity 94000 is 6% below the day's start of 100000 (limit 5%): only risk-reducing orders pass"
      )
      // Active again, the sale on bar 6 passes.
      expect(ofTag(events, "VerdictGiven").at(-1)!.verdict).toMatchObject({ outcome: "approved", state: "active", transition: null })
      expect(result.tradingState).toBe("active")
      // Twice the same.
      expect((yield* dropping()).lines).toEqual((yield* dropping()).lines)
    }))

  it.effect("a run recorded before is re-executed as it was: no intent on the bar, no breaker", () =>
    Effect.gen(function*() {
      const before = yield* dropping({ recordedStart: {} })
      expect(moves(before.events)).toEqual([])
      expect((yield* dropping({ recordedStart: {} })).lines).toEqual(before.lines)
    }))

  it.effect("still lifts only its own reducing: a drawdown's halt the next day stays", () =>
    Effect.gen(function*() {
      // Equity down 6 % on bar 2 (reducing), 4.3 % on bar 3 (lifted, not tripped), 5.6 % on bar 4
      // (reducing), then 30 % below its peak on bar 5 (halted): no later day lifts that.
      const closes = [100, 100, 88, 80, 70, 40, 40, 40, 40]
      const { events, result } = yield* record({
        strategy: strategyOf(["AAA"]),
        feed: feedOf(series("AAA", closes)),
        registry: registryOf({ AAA: say(7, "long", "flat") })
      })
      expect(moves(events)).toEqual([
        [2, "active", "reducing", "daily_loss_breaker"],
        [3, "reducing", "active", "new_trading_day"],
        [4, "active", "reducing", "daily_loss_breaker"],
        [5, "reducing", "active", "new_trading_day"],
        [5, "active", "halted", "drawdown_halt"]
      ])
      expect(result.tradingState).toBe("halted")
      expect(ofTag(events, "VerdictGiven").at(-1)!.verdict).toMatchObject({ outcome: "rejected", state: "halted" })
    }))
})
