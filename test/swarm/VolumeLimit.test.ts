/**
 * The volume limit (`execution.maxVolumePercent`) in whole runs — the real coordinator, risk
 * officer, desk and ledger, a scripted analyst — on a synthetic market whose bars trade little: an
 * order fills in parts across bars, what is left works until filled, replaced by a changed
 * decision, or cancelled at the end; without the option the same run fills whole, as it did.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import type { Direction } from "../../schemas/Opinion.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import { ofTag, record, recordedBefore, registryOf } from "./recorded.js"

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)

/** Daily bars of AAA from 2024-01-01 at these opens (close = open) and volumes. */
const bars = (rows: ReadonlyArray<readonly [price: number, volume: number]>): Array<Bar> =>
  rows.map(([price, volume], i) => ({
    symbol: "AAA" as Bar["symbol"],
    ts: (START + i * DAY) as Bar["ts"],
    open: price,
    high: price,
    low: price,
    close: price,
    volume
  }))
const feedOf = (series: Array<Bar>) => Feed.fromBars(new Map([[series[0]!.symbol, series]]), { fingerprint: "test:volume-limit" })
const strategyOf = (execution: object) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "volume limit",
    symbols: ["AAA"],
    initialCash: "100000",
    agents: [{ type: "test_script" }],
    sizing: { mode: "percent_of_equity", value: 50 },
    execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" }, ...execution }
  })
/** The run's events, with no agent crashed on the way (a restarted desk would hide a failure). */
const run = (execution: object, series: Array<Bar>, script: ReadonlyArray<Direction>) =>
  record({ strategy: strategyOf(execution), feed: feedOf(series), registry: registryOf({ AAA: script }) }).pipe(
    Effect.tap(({ events }) => expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed")).toEqual([]))
  )


/** Bought on bar 0: 500 at 100 (half the equity); the bars trade 1,000 each. */
const thin = bars([[100, 1_000], [100, 1_000], [100, 1_000], [100, 1_000], [100, 1_000], [100, 1_000], [100, 1_000]])

describe("the volume limit in a backtest", () => {
  it.effect("a low-volume market fills the order in parts across bars, each at most the limit, until it is filled", () =>
    Effect.gen(function*() {
      const { events, result } = yield* run({ maxVolumePercent: 10 }, thin, ["long"])
      expect(events[0]).toMatchObject({ _tag: "RunStarted", workingOrders: "kept" })
      const fills = ofTag(events, "OrderFilled").map((e) => e.fill)
      expect(fills.map((f) => [f.id, f.quantity, f.orderFilled, f.orderLeft])).toEqual([
        ["AAA@1704067200000:fill", 100, 100, 400],
        ["AAA@1704067200000:fill:2", 100, 200, 300],
        ["AAA@1704067200000:fill:3", 100, 300, 200],
        ["AAA@1704067200000:fill:4", 100, 400, 100],
        ["AAA@1704067200000:fill:5", 100, 500, 0]
      ].map(([id, ...rest]) => [expect.stringMatching(new RegExp(`${String(id).replace(/[$()*+.?[\\\]^{|}]/g, "\\$&")}$`)), ...rest]))
      expect(fills.map((f) => f.ts)).toEqual(thin.slice(1, 6).map((b) => b.ts))
      // One order, placed once: the remainder is not ordered again while the consensus stands.
      expect(ofTag(events, "OrderPlaced")).toHaveLength(1)
      expect(ofTag(events, "OrderCancelled")).toHaveLength(0)
      expect(result.portfolio.positions.map((p) => [p.symbol, p.quantity])).toEqual([["AAA", 500]])
      expect(result.counts.fills).toBe(5)
    }))

  it.effect("without the option the same run fills the order whole on the next bar, with no new field", () =>
    Effect.gen(function*() {
      const { events, result } = yield* run({}, thin, ["long"])
      const fills = ofTag(events, "OrderFilled").map((e) => e.fill)
      expect(fills.map((f) => f.quantity)).toEqual([500])
      expect(fills[0]).not.toHaveProperty("orderLeft")
      expect(fills[0]!.id.endsWith(":fill")).toBe(true)
      expect(result.portfolio.positions.map((p) => p.quantity)).toEqual([500])
      // Nothing works for bars without the option: its RunStarted says nothing of working orders.
      expect(events[0]).not.toHaveProperty("workingOrders")
    }))

  it.effect("a bar that traded nothing fills nothing; what is left at the end of the data is cancelled, saying how much", () =>
    Effect.gen(function*() {
      const series = bars([[100, 1_000], [100, 0], [100, 2_000], [100, 0]])
      const { events, result } = yield* run({ maxVolumePercent: 10 }, series, ["long"])
      const fills = ofTag(events, "OrderFilled").map((e) => e.fill)
      expect(fills.map((f) => [f.quantity, f.ts])).toEqual([[200, series[2]!.ts]])
      const cancelled = ofTag(events, "OrderCancelled")
      expect(cancelled.map((e) => [e.filled, e.unfilled])).toEqual([[200, 300]])
      expect(cancelled[0]!.reason).toContain("the data ended")
      expect(result.portfolio.positions.map((p) => p.quantity)).toEqual([200])
    }))

  it.effect("an order the end of the data cancels says whether bars came that traded too little, or none came", () =>
    Effect.gen(function*() {
      // Bought on bar 0; bars 1 and 2 trade nothing: bars came, and none could fill a unit.
      const starved = bars([[100, 1_000], [100, 0], [100, 0]])
      const { events } = yield* run({ maxVolumePercent: 10 }, starved, ["long"])
      const cancelled = ofTag(events, "OrderCancelled")
      expect(cancelled.map((e) => [e.filled, e.unfilled])).toEqual([[0, 500]])
      expect(cancelled[0]!.reason).toBe(
        `the data ended (${new Date(starved[2]!.ts).toISOString()}) before any of it filled: the 2 bars of AAA that came traded too little for a unit of it (volume limit)`
      )
      // One such bar is said so; and an order decided on the last bar had no bar at all to fill at.
      const once = yield* run({ maxVolumePercent: 10 }, bars([[100, 1_000], [100, 0]]), ["long"])
      expect(ofTag(once.events, "OrderCancelled")[0]!.reason).toContain("before any of it filled: the one bar of AAA that came traded too little")
      const last = bars([[100, 1_000], [100, 1_000]])
      const none = yield* run({ maxVolumePercent: 10 }, last, ["flat", "long"])
      expect(ofTag(none.events, "OrderCancelled").map((e) => e.reason)).toEqual([
        `the data ended (${new Date(last[1]!.ts).toISOString()}) before a bar of AAA to fill it at`
      ])
      // A run recorded before it (no RunStarted.workingOrders) is re-executed saying what it said.
      const before = yield* record({
        strategy: strategyOf({ maxVolumePercent: 10 }),
        feed: feedOf(starved),
        registry: registryOf({ AAA: ["long"] }),
        recordedStart: { ...recordedBefore }
      })
      expect(before.events[0]).not.toHaveProperty("workingOrders")
      expect(ofTag(before.events, "OrderCancelled")[0]!.reason).toBe(
        `the data ended (${new Date(starved[2]!.ts).toISOString()}) before a bar of AAA to fill it at`
      )
    }))

  it.effect("a changed decision supersedes the remainder: it is replaced by the order toward the new target, sized from the position", () =>
    Effect.gen(function*() {
      // Long on bar 0 (buy 500); 100 fill on bar 1; flat on bar 1: sell the 100 held, not 500.
      const { events, result } = yield* run({ maxVolumePercent: 10 }, thin, ["long", "flat"])
      const placed = ofTag(events, "OrderPlaced").map((e) => [e.order.side, e.order.quantity])
      expect(placed).toEqual([["buy", 500], ["sell", 100]])
      const cancelled = ofTag(events, "OrderCancelled")
      expect(cancelled.map((e) => [e.filled, e.unfilled, e.reason.startsWith("replaced by order")])).toEqual([[100, 400, true]])
      const fills = ofTag(events, "OrderFilled").map((e) => [e.fill.side, e.fill.quantity])
      expect(fills).toEqual([["buy", 100], ["sell", 100]])
      expect(result.portfolio.positions.map((p) => p.quantity)).toEqual([0])
    }))

  it.effect("a changed decision that orders nothing still ends the old order's remainder", () =>
    Effect.gen(function*() {
      // Bar 1 trades nothing: the buy has filled none when the consensus turns flat — the target,
      // flat, is the position: no order, and the buy must not go on filling.
      const series = bars([[100, 1_000], [100, 0], [100, 1_000], [100, 1_000], [100, 1_000]])
      const { events, result } = yield* run({ maxVolumePercent: 10 }, series, ["long", "flat"])
      expect(ofTag(events, "OrderPlaced")).toHaveLength(1)
      expect(ofTag(events, "OrderFilled")).toHaveLength(0)
      const cancelled = ofTag(events, "OrderCancelled")
      expect(cancelled.map((e) => [e.filled, e.unfilled])).toEqual([[0, 500]])
      expect(cancelled[0]!.reason).toContain("superseded by the decision")
      expect(result.portfolio.positions.map((p) => p.quantity)).toEqual([])
    }))

  it.effect("same_close: the deciding bar's share at its close, the rest at the next opens", () =>
    Effect.gen(function*() {
      const { events } = yield* run({ maxVolumePercent: 20, fillTiming: "same_close" }, thin, ["long"])
      const fills = ofTag(events, "OrderFilled").map((e) => [e.fill.quantity, e.fill.ts])
      expect(fills).toEqual([[200, thin[0]!.ts], [200, thin[1]!.ts], [100, thin[2]!.ts]])
    }))

  it.effect("hard gates hold at every part: a gap up cuts a part to the cash at hand, and no fill leaves cash below zero", () =>
    Effect.gen(function*() {
      // 500 at 100 (the gates' 50 % position cap); 100 fill at 100, then the price goes to 1,000:
      // the 89,995 left buy 89 of the next 100.
      const series = bars([[100, 1_000], [100, 1_000], [1_000, 1_000], [1_000, 1_000], [1_000, 1_000]])
      const { events } = yield* run(
        { maxVolumePercent: 10, commission: { _tag: "per_share", perShare: "0.01", minimum: "5" } },
        series,
        ["long"]
      )
      const fills = ofTag(events, "OrderFilled").map((e) => e.fill)
      expect(fills.map((f) => [f.quantity, f.commission])).toEqual([[100, 5_000_000], [89, 0]])
      expect(fills[1]!.reduced).toContain("cut from 100 to 89")
      for (const e of ofTag(events, "PortfolioUpdated")) expect(e.snapshot.cash).toBeGreaterThanOrEqual(0)
      // The cut ends the order: the rest is cancelled, saying so and how much.
      const cancelled = ofTag(events, "OrderCancelled")
      expect(cancelled).toHaveLength(1)
      expect([cancelled[0]!.filled, cancelled[0]!.unfilled]).toEqual([189, 311])
    }))
})

describe("the risk officer with orders working in parts", () => {
  it.effect("judges the next intents against what is left of a partly filled order, not the whole of it", () =>
    Effect.gen(function*() {
      // AAA bought on bar 0 (500 at 100, 100 a bar); BBB on bar 1, when 100 AAA are held and 400
      // still to come: 40,000 is spoken for, not the 50,000 of the whole order (filled 10,000 of it).
      const aaa = thin
      const bbb = thin.map((b) => ({ ...b, symbol: "BBB" as Bar["symbol"], volume: 1_000_000 }))
      const { events } = yield* record({
        strategy: Schema.decodeUnknownSync(Strategy)({
          name: "volume limit",
          symbols: ["AAA", "BBB"],
          initialCash: "100000",
          agents: [{ type: "test_script" }],
          sizing: { mode: "percent_of_equity", value: 50 },
          execution: { maxVolumePercent: 10 }
        }),
        feed: Feed.fromBars(new Map([["AAA" as Bar["symbol"], aaa], ["BBB" as Bar["symbol"], bbb]]), { fingerprint: "test:volume-limit-2" }),
        registry: registryOf({ AAA: ["long"], BBB: ["flat", "long"] })
      })
      expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed")).toEqual([])
      const verdicts = ofTag(events, "VerdictGiven").map((e) => [e.verdict.intent.symbol, e.verdict.outcome, e.verdict.quantity])
      // 50 % of 100,000 at 100 is 500 BBB; the cash left once AAA's 400 come (50,000) pays
      // 500 less the 10 % reserve (10,000): 400 — 300 if the whole AAA order were counted again.
      expect(verdicts.slice(0, 2)).toEqual([["AAA", "approved", 500], ["BBB", "reduced", 400]])
      // And no fill left cash below zero, nor was any unit ordered twice: the position is what filled.
      for (const e of ofTag(events, "PortfolioUpdated")) expect(e.snapshot.cash).toBeGreaterThanOrEqual(0)
    }))
})

describe("a reduced target worked under a volume limit", () => {
  const HOUR = 3_600_000
  /** Hourly bars of AAA at 100 trading 1,000 each: one UTC day, so the day's orders add up. */
  const hourly = bars(Array.from({ length: 8 }, () => [100, 1_000] as const)).map((b, i) => ({ ...b, ts: (START + i * HOUR) as Bar["ts"] }))
  /** Half the equity (500) asked, the position capped at 30 % (300), 10 % of each bar (100) a bar. */
  const reducedStrategy = (rules: ReadonlyArray<object>) =>
    Schema.decodeUnknownSync(Strategy)({
      name: "volume limit",
      symbols: ["AAA"],
      initialCash: "100000",
      agents: [{ type: "test_script" }],
      sizing: { mode: "percent_of_equity", value: 50 },
      risk: { limits: { maxPositionPct: 30 } },
      rules,
      execution: {
        fillTiming: "next_open",
        slippageBps: 0,
        commission: { _tag: "per_share", perShare: "0.01", minimum: "5" },
        maxVolumePercent: 10
      }
    })
  const reducedRun = (rules: ReadonlyArray<object>) =>
    record({ strategy: reducedStrategy(rules), feed: feedOf(hourly), registry: registryOf({ AAA: ["long"] }) }).pipe(
      Effect.tap(({ events }) => expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed")).toEqual([]))
    )

  it.effect("the order toward it works on, not placed again each bar: one order, its parts, one commission minimum", () =>
    Effect.gen(function*() {
      const { events, result } = yield* reducedRun([])
      expect(ofTag(events, "VerdictGiven")[0]!.verdict).toMatchObject({ outcome: "reduced", quantity: 300 })
      const placed = ofTag(events, "OrderPlaced").map((e) => [e.order.side, e.order.quantity])
      expect(placed).toEqual([["buy", 300]])
      const fills = ofTag(events, "OrderFilled").map((e) => e.fill)
      expect(new Set(fills.map((f) => f.orderId)).size).toBe(1)
      expect(fills.map((f) => [f.quantity, f.orderFilled, f.orderLeft, f.commission])).toEqual([
        [100, 100, 200, 5_000_000],
        [100, 200, 100, 0],
        [100, 300, 0, 0]
      ])
      expect(ofTag(events, "OrderCancelled")).toEqual([])
      expect(result.portfolio.positions.map((p) => p.quantity)).toEqual([300])
    }))

  it.effect("the order counts once toward max_orders_per_day: a limit of one a day lets it fill whole", () =>
    Effect.gen(function*() {
      const { events, result } = yield* reducedRun([{ kind: "max_orders_per_day", id: "one", name: "one a day", params: { count: 1 } }])
      expect(ofTag(events, "OrderPlaced")).toHaveLength(1)
      expect(ofTag(events, "OrderFilled").map((e) => e.fill.quantity)).toEqual([100, 100, 100])
      expect(ofTag(events, "OrderCancelled")).toEqual([])
      // Once it has filled, what the cap still keeps from the target is judged again — the day's one order is spent.
      const later = ofTag(events, "VerdictGiven").slice(1).map((e) => e.verdict)
      expect(later.length).toBeGreaterThan(0)
      for (const verdict of later) {
        expect(verdict.outcome).toBe("rejected")
        expect(verdict.reasons.join("; ")).toContain("would be order 2 today")
      }
      expect(result.portfolio.positions.map((p) => p.quantity)).toEqual([300])
    }))
})
