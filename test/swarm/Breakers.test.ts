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
import { MarketUpdate, SetTradingState } from "../../schemas/TradingProtocol.js"
import * as Feed from "../../src/market/Feed.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import * as Run from "../../src/swarm/Run.js"
import { inSpine } from "../agents/spine.js"
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
      expect(ofTag(events, "RunStarted")[0]!.breakers).toBe("fills")
      // One order (the buy); nothing decided between it and bar 18, whose sale the halt refuses: it
      // stands while the run stays halted, and is not decided and judged again on the bars after.
      expect(ofTag(events, "DecisionMade").map((e) => dayOf(e.decision.ts))).toEqual([0, FLAT_AT])
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
        lines.map((line) => line.replace(/,"(breakers|reducedIntents|flatScoring|lastRounds|analystProgress|downHalts|stateRejections)":"[a-z_]+"/g, ""))
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

describe("a decision the halt refused (RunStarted.stateRejections)", () => {
  /**
   * AAA falls as above (halted on bar 14) and stays at 47 to bar 199; BBB stays at 50. From bar 18
   * AAA's script says flat for 40 bars, then long (its target, held) for 20, and so on (flat again
   * from bars 78, 138 and 198); BBB's says
   * flat to bar 19 (its target), long from bar 20 on.
   */
  const BARS = 200
  const aaaSays = Array.from({ length: BARS }, (_, i): Direction => (i < FLAT_AT || (i - FLAT_AT) % 60 >= 40 ? "long" : "flat"))
  const bbbSays = Array.from({ length: BARS }, (_, i): Direction => (i < 20 ? "flat" : "long"))
  const halting = (options: Partial<Backtest.Options> = {}) =>
    record({
      strategy: strategyOf(["AAA", "BBB"]),
      feed: feedOf(series("AAA", Array.from({ length: BARS }, (_, i) => FALLING[i] ?? 47)), series("BBB", Array.from({ length: BARS }, () => 50))),
      registry: registryOf({ AAA: aaaSays, BBB: bbbSays }),
      ...options
    })
  /** A recording made before it: every flag of its time but this one. */
  const before: Partial<Backtest.Options> = {
    recordedStart: { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "fills", analystProgress: "past_warm_up", downHalts: "settled" }
  }
  const rejectedAt = (events: ReadonlyArray<RunEvent>) =>
    ofTag(events, "VerdictGiven").filter((e) => e.verdict.outcome === "rejected").map((e) => `${e.verdict.intent.symbol}@${dayOf(e.verdict.intent.ts)}`)

  it.effect("records one rejected verdict per symbol per consensus change while halted, not one per bar", () =>
    Effect.gen(function*() {
      const now = yield* halting()
      expect(ofTag(now.events, "RunStarted")[0]!.stateRejections).toBe("standing")
      expect(moves(now.events)).toEqual([[CROSSED, "active", "halted", "drawdown_halt"]])
      // AAA's four turns to flat, BBB's one to long: each judged once, on the bar it came.
      expect(rejectedAt(now.events)).toEqual(["AAA@18", "BBB@20", "AAA@78", "AAA@138", "AAA@198"])
      expect(ofTag(now.events, "DecisionMade").map((e) => `${e.decision.symbol}@${dayOf(e.decision.ts)}`)).toEqual(["AAA@0", "AAA@18", "BBB@20", "AAA@78", "AAA@138", "AAA@198"])
      expect(now.result.counts).toMatchObject({ decisions: 6, rejected: 5, orders: 1 })
      expect(now.result.tradingState).toBe("halted")
      // Deterministic, in a backtest and in a paper run.
      expect((yield* halting()).lines).toEqual(now.lines)
      const paper = yield* halting({ mode: "paper" })
      expect((yield* halting({ mode: "paper" })).lines).toEqual(paper.lines)
      expect(rejectedAt(paper.events)).toEqual(rejectedAt(now.events))

      // Recorded before: every bar judged again, and rejected again — re-executed so, byte for byte.
      const old = yield* halting(before)
      expect(ofTag(old.events, "RunStarted")[0]!).not.toHaveProperty("stateRejections")
      expect(rejectedAt(old.events)).toHaveLength(3 * 40 + 2 + (BARS - 20))
      expect((yield* halting(before)).lines).toEqual(old.lines)
      expect(now.result.counts.events * 4).toBeLessThan(old.result.counts.events)
      // The same run to the first refusal, and the same books at the end.
      const strip = (line: string) => line.replace(`,"stateRejections":"standing"`, "")
      const refusal = now.events.findIndex((e) => e._tag === "VerdictGiven" && e.verdict.outcome === "rejected")
      expect(now.lines.slice(0, refusal + 1).map(strip)).toEqual(old.lines.slice(0, refusal + 1))
      expect(now.result.metrics).toEqual(old.result.metrics)
    }))
})

describe("a decision the halt refused, and an operator who lifts the halt", () => {
  // Runs have no operator's command for the trading state yet: the whole swarm (Run.start) on the
  // agents' test world, fed bar by bar, the operator's SetTradingState sent to its risk officer.
  it("is judged again on the symbol's next bar once the halt is lifted, and goes through", inSpine((spine) => {
    const bars = series("AAA", [100, 100, 100, 100, 100, 100])
    const swarm = spine.inSystem(Run.start({
      run: spine.log.run,
      strategy: strategyOf(["AAA"]),
      log: spine.log,
      events: "decisions",
      registry: registryOf({ AAA: ["long"] }),
      breakers: "fills",
      standingRejections: true
    }))
    const feed = (i: number) => {
      spine.world.advanceTo(bars[i]!.ts)
      spine.send(swarm.coordinator.tell(new MarketUpdate({ ts: bars[i]!.ts, bars: [bars[i]!] })))
      spine.world.advanceTo(bars[i]!.ts + DAY / 2)
      spine.log.endSlice()
    }
    const operator = (to: "active" | "halted", reason: string) =>
      spine.inSystem(swarm.risk.ask(new SetTradingState({ to, actor: "alice", reason })))
    spine.world.advanceTo(START)
    operator("halted", "news pending")
    for (const i of [0, 1, 2]) feed(i)
    const verdicts = () => spine.ofTag("VerdictGiven").map((e) => [dayOf(e.verdict.intent.ts), e.verdict.outcome])
    // Refused on bar 0; bars 1 and 2 repeat it while the halt stands.
    expect(verdicts()).toEqual([[0, "rejected"]])
    operator("active", "news out")
    for (const i of [3, 4]) feed(i)
    // Judged again on the next bar after the lift, approved; then it is the target.
    expect(verdicts()).toEqual([[0, "rejected"], [3, "approved"]])
    expect(spine.ofTag("DecisionMade").map((e) => dayOf(e.decision.ts))).toEqual([0, 3])
  }, START))
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

/**
 * Fills at the deciding bar's close (`same_close`) come after that bar's marks: a loss they make —
 * their commission here — is the bar's, and the breakers see it on that bar (`RunStarted.breakers`:
 * `fills`). Recorded with `marks`, they saw it only at the next bar's marks: a bar late, and on daily
 * bars never for the daily loss breaker (the next day starts from the equity after those fills).
 */
describe("breakers and same-close fills", () => {
  const HOUR = 3_600_000
  /** Daily bars, or (`intraday`) bars at 09:00 and 15:00 of each day from 2024-01-01. */
  const timed = (closes: ReadonlyArray<number>, intraday: boolean): Array<Bar> =>
    series("AAA", closes).map((bar, i) => ({
      ...bar,
      ts: (intraday ? START + Math.floor(i / 2) * DAY + (i % 2 === 0 ? 9 : 15) * HOUR : bar.ts) as Bar["ts"]
    }))
  /** Half the equity in AAA (500 at 100), filled at the deciding bar's close, `perShare` a share each way. */
  const sameClose = (perShare: string) =>
    Schema.decodeUnknownSync(Strategy)({
      ...Schema.encodeSync(Strategy)(strategyOf(["AAA"])),
      execution: { fillTiming: "same_close", slippageBps: 0, commission: { _tag: "per_share", perShare } }
    })
  const run = (closes: ReadonlyArray<number>, intraday: boolean, perShare: string, flatAt: number, options: Partial<Backtest.Options> = {}) =>
    record({
      strategy: sameClose(perShare),
      feed: feedOf(timed(closes, intraday)),
      registry: registryOf({ AAA: say(flatAt, "long", "flat") }),
      ...options
    })
  /** A recording that checked its breakers at the marks only (before `fills`). */
  const marksOnly: Partial<Backtest.Options> = {
    recordedStart: { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "marks", analystProgress: "past_warm_up", downHalts: "settled" }
  }
  /** Each trading-state change as [bar index, from, to, cause], by the bar its event was recorded on. */
  const movesAt = (recorded: { events: ReadonlyArray<RunEvent> }, bars: ReadonlyArray<Bar>) =>
    ofTag(recorded.events, "TradingStateChanged").map((e) =>
      [bars.findIndex((b) => b.ts === e.at), e.transition.from, e.transition.to, e.transition.cause] as const
    )
  const saleAt = (recorded: { events: ReadonlyArray<RunEvent> }) => ofTag(recorded.events, "OrderFilled").map((e) => e.fill.ts)

  // Bought at 100 on bar 0 (500, commission 750: equity 99,250), sold at 91 on bar 2: its marks are
  // 4.5 % below the day's start of 99,250 (the limit is 5 %), the sale's commission takes it to 5.3 %.
  const DAILY_DROP = [100, 100, 91, 91, 91, 91]
  it.effect("the daily loss breaker trips on the bar whose same-close fills take the day's loss past it (daily bars)", () =>
    Effect.gen(function*() {
      const bars = timed(DAILY_DROP, false)
      const now = yield* run(DAILY_DROP, false, "1.5", 2)
      expect(ofTag(now.events, "RunStarted")[0]!.breakers).toBe("fills")
      expect(saleAt(now)).toEqual([bars[0]!.ts, bars[2]!.ts])
      expect(ofTag(now.events, "PortfolioUpdated").at(-1)!.snapshot.equity).toBe(94_000_000_000)
      expect(movesAt(now, bars)).toEqual([
        [2, "active", "reducing", "daily_loss_breaker"],
        [3, "reducing", "active", "new_trading_day"]
      ])
      expect(ofTag(now.events, "TradingStateChanged")[0]!.transition.reason).toBe(
        "equity 94000 is 5.29% below the day's start of 99250 (limit 5%): only risk-reducing orders pass"
      )
      // Recorded after the bar's fills and their books: at the bar's end.
      const at = now.events.findIndex((e) => e._tag === "TradingStateChanged")
      expect(now.events[at - 1]).toMatchObject({ _tag: "PortfolioUpdated", snapshot: { ts: bars[2]!.ts } })
      expect((yield* run(DAILY_DROP, false, "1.5", 2)).lines).toEqual(now.lines)
      // Recorded with `marks`: never (the next day starts at 94,000), and re-executed so, byte for byte.
      const before = yield* run(DAILY_DROP, false, "1.5", 2, marksOnly)
      expect(ofTag(before.events, "RunStarted")[0]!.breakers).toBe("marks")
      expect(movesAt(before, bars)).toEqual([])
      expect((yield* run(DAILY_DROP, false, "1.5", 2, marksOnly)).lines).toEqual(before.lines)
      // The two differ by the flag and the two changes alone.
      const strip = (lines: ReadonlyArray<string>) =>
        lines.filter((line) => !line.includes(`"_tag":"TradingStateChanged"`))
          .map((line) => line.replace(`"breakers":"fills"`, `"breakers":"marks"`).replace(`,"stateRejections":"standing"`, "").replace(/"seq":\d+,/, ""))
      expect(strip(now.lines.slice(0, -1))).toEqual(strip(before.lines.slice(0, -1)))
    }))

  // Bought at 100 on the day's first bar (500, commission 500: equity 99,500), sold at 91.2 on the
  // third: its marks are 4.9 % below the day's start of 100,000, the sale's commission takes it to 5.4 %.
  const INTRADAY_DROP = [100, 100, 91.2, 91.2, 91.2, 91.2]
  it.effect("the daily loss breaker trips on the bar whose same-close fills take the day's loss past it (intraday bars)", () =>
    Effect.gen(function*() {
      // Hourly, all in one day: the day starts before the buy.
      const bars = series("AAA", INTRADAY_DROP).map((bar, i) => ({ ...bar, ts: (START + 9 * HOUR + i * HOUR) as Bar["ts"] }))
      const feed = feedOf(bars)
      const go = (options: Partial<Backtest.Options> = {}) =>
        record({ strategy: sameClose("1"), feed, registry: registryOf({ AAA: say(2, "long", "flat") }), ...options })
      const now = yield* go()
      expect(saleAt(now)).toEqual([bars[0]!.ts, bars[2]!.ts])
      expect(movesAt(now, bars)).toEqual([[2, "active", "reducing", "daily_loss_breaker"]])
      expect(ofTag(now.events, "TradingStateChanged")[0]!.transition.reason).toBe(
        "equity 94600 is 5.4% below the day's start of 100000 (limit 5%): only risk-reducing orders pass"
      )
      expect((yield* go()).lines).toEqual(now.lines)
      // Recorded with `marks`: a bar late.
      const before = yield* go(marksOnly)
      expect(movesAt(before, bars)).toEqual([[3, "active", "reducing", "daily_loss_breaker"]])
      expect((yield* go(marksOnly)).lines).toEqual(before.lines)
    }))

  // Bought at 100 (500, commission 2,000: equity 98,000), down 2 a bar (1 % or so: no daily loss
  // breaker), sold at 56 on bar 24: its marks are 24 % below the peak of 100,000 (the limit is 25 %),
  // the sale's commission takes it to 26 %.
  const SLIDE = [100, 100, ...Array.from({ length: 23 }, (_, i) => 100 - 2 * i), 56, 56]
  const SOLD = 24
  for (const intraday of [false, true]) {
    it.effect(`the drawdown halt trips on the bar whose same-close fills' commission takes equity past it (${intraday ? "intraday" : "daily"} bars)`, () =>
      Effect.gen(function*() {
        const bars = timed(SLIDE, intraday)
        expect(bars[SOLD]!.close).toBe(56)
        const now = yield* run(SLIDE, intraday, "4", SOLD)
        expect(saleAt(now)).toEqual([bars[0]!.ts, bars[SOLD]!.ts])
        expect(movesAt(now, bars)).toEqual([[SOLD, "active", "halted", "drawdown_halt"]])
        expect(ofTag(now.events, "TradingStateChanged")[0]!.transition.reason).toBe(
          "equity 74000 is 26% below its peak of 100000 (limit 25%): trading halts"
        )
        expect((yield* run(SLIDE, intraday, "4", SOLD)).lines).toEqual(now.lines)
        // A paper run (watched live, on the same agents) trips on the same bar, twice the same.
        const paper = yield* run(SLIDE, intraday, "4", SOLD, { mode: "paper" })
        expect(movesAt(paper, bars)).toEqual([[SOLD, "active", "halted", "drawdown_halt"]])
        expect((yield* run(SLIDE, intraday, "4", SOLD, { mode: "paper" })).lines).toEqual(paper.lines)
        // Recorded with `marks`: a bar late (the next bar's marks, the books flat since).
        const before = yield* run(SLIDE, intraday, "4", SOLD, marksOnly)
        expect(movesAt(before, bars)).toEqual([[SOLD + 1, "active", "halted", "drawdown_halt"]])
        expect((yield* run(SLIDE, intraday, "4", SOLD, marksOnly)).lines).toEqual(before.lines)
      }))
  }
})

describe("the risk officer down while its breakers move", () => {
  /**
   * AAA bought on bar 0 and down 12 % on bar 2 (the daily loss breaker); BBB wanted on bar 1, and
   * the risk officer crashing on every judgement of bars 1 and 2: the coordinator halts trading on
   * bar 1, over the officer's state, and lifts it when the officer answers on bar 3 — while under
   * it the officer trips its daily breaker on bar 2's marks and lifts it with bar 3's new day.
   */
  const down = (options: Partial<Backtest.Options> = {}) =>
    record({
      strategy: strategyOf(["AAA", "BBB"]),
      feed: feedOf(series("AAA", DROP), series("BBB", DROP.map(() => 10))),
      registry: registryOf({ AAA: ["long"], BBB: ["flat", "long"] }),
      faults: { risk: (message) => (message as { _tag: string })._tag === "Judge" && [1, 2].includes(dayOf((message as { ts: number }).ts)) },
      ...options
    })
  const chained = (events: ReadonlyArray<RunEvent>) =>
    ofTag(events, "TradingStateChanged").every((e, i, all) => e.transition.from === (i === 0 ? "active" : all[i - 1]!.transition.to))

  it.effect("the changes it made under the coordinator's halt are recorded after the halt lifts: the recorded chain stays whole", () =>
    Effect.gen(function*() {
      const { events, result } = yield* down()
      expect(ofTag(events, "RunStarted")[0]!.downHalts).toBe("settled")
      // Recorded on bar 3, as the halt lifts; each says when it was made.
      expect(moves(events)).toEqual([
        [1, "active", "halted", "system"],
        [3, "halted", "active", "system"],
        [3, "active", "reducing", "daily_loss_breaker"],
        [3, "reducing", "active", "new_trading_day"]
      ])
      expect(ofTag(events, "TradingStateChanged").map((e) => dayOf(e.transition.at))).toEqual([1, 3, 2, 3])
      expect(chained(events)).toBe(true)
      expect(result.tradingState).toBe("active")
      // Deterministic.
      expect((yield* down()).lines).toEqual((yield* down()).lines)
    }))

  it.effect("a run recorded before (no downHalts in its RunStarted) is re-executed as it was: the officer's changes as they came", () =>
    Effect.gen(function*() {
      const recordedStart = { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "marks", analystProgress: "past_warm_up" } as const
      const before = yield* down({ recordedStart })
      expect(ofTag(before.events, "RunStarted")[0]!).not.toHaveProperty("downHalts")
      expect(moves(before.events)).toEqual([
        [1, "active", "halted", "system"],
        [2, "active", "reducing", "daily_loss_breaker"],
        [3, "reducing", "active", "new_trading_day"],
        [3, "halted", "active", "system"]
      ])
      expect(chained(before.events)).toBe(false)
      expect((yield* down({ recordedStart })).lines).toEqual(before.lines)
    }))

  /**
   * As above, but the run ends on bar 3 with the officer still failing every judgement: the halt
   * never lifts while the run goes on, and under it the officer tripped its daily breaker on bar 2
   * and lifted it with bar 3's new day.
   */
  const endsDown = (options: Partial<Backtest.Options> = {}) =>
    down({
      feed: feedOf(series("AAA", DROP.slice(0, 4)), series("BBB", DROP.slice(0, 4).map(() => 10))),
      faults: { risk: (message) => (message as { _tag: string })._tag === "Judge" && [1, 2, 3].includes(dayOf((message as { ts: number }).ts)) },
      ...options
    })

  it.effect("a run that ends under the coordinator's halt records, at its end, the halt ending and the officer's moves under it: it ends in the officer's state", () =>
    Effect.gen(function*() {
      const { events, result } = yield* endsDown()
      expect(result.status).toBe("completed")
      expect(ofTag(events, "RunStarted")[0]!.downHalts).toBe("settled")
      expect(moves(events)).toEqual([
        [1, "active", "halted", "system"],
        [3, "halted", "active", "system"],
        [3, "active", "reducing", "daily_loss_breaker"],
        [3, "reducing", "active", "new_trading_day"]
      ])
      expect(ofTag(events, "TradingStateChanged").map((e) => dayOf(e.transition.at))).toEqual([1, 3, 2, 3])
      expect(ofTag(events, "TradingStateChanged")[1]!.transition.reason).toContain("the run ends under the halt")
      expect(chained(events)).toBe(true)
      // Recorded before the run's end: its last events are the settlement, then RunCompleted.
      expect(events.slice(-4).map((e) => e._tag)).toEqual(["TradingStateChanged", "TradingStateChanged", "TradingStateChanged", "RunCompleted"])
      expect(result.tradingState).toBe("active")
      expect((yield* endsDown()).lines).toEqual((yield* endsDown()).lines)
    }))

  it.effect("a run its supervisor gives up on under the halt records the officer's moves under it, then its own halt", () =>
    Effect.gen(function*() {
      // The officer fails every judgement from bar 1 on: the ledger's word on bars 2 and 3 (handled,
      // the breaker tripped and lifted) keeps it going until the judgements of bars 4 to 7 fail in a row.
      const { events, result } = yield* down({ faults: { risk: (message) => (message as { _tag: string })._tag === "Judge" && dayOf((message as { ts: number }).ts) >= 1 } })
      expect(result.status).toBe("failed")
      expect(result.failure).toContain("/user/run/risk kept failing")
      const given = dayOf(ofTag(events, "TradingStateChanged").at(-1)!.at)
      expect(moves(events)).toEqual([
        [1, "active", "halted", "system"],
        [given, "halted", "active", "system"],
        [given, "active", "reducing", "daily_loss_breaker"],
        [given, "reducing", "active", "new_trading_day"],
        [given, "active", "halted", "system"]
      ])
      expect(ofTag(events, "TradingStateChanged").at(-1)!.transition.reason).toBe(result.failure)
      expect(chained(events)).toBe(true)
      expect(result.tradingState).toBe("halted")
    }))

  it.effect("a run recorded before (downHalts: chained) is re-executed as it was: it ends halted, the officer's moves under the halt unrecorded", () =>
    Effect.gen(function*() {
      const recordedStart = { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "fills", analystProgress: "past_warm_up", downHalts: "chained" } as const
      const before = yield* endsDown({ recordedStart })
      expect(ofTag(before.events, "RunStarted")[0]!.downHalts).toBe("chained")
      expect(moves(before.events)).toEqual([[1, "active", "halted", "system"]])
      expect(before.result.tradingState).toBe("halted")
      expect((yield* endsDown({ recordedStart })).lines).toEqual(before.lines)
    }))
})
