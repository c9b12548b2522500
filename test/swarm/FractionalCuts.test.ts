/**
 * A fractional strategy's order that comes to a whole number of units (`RunStarted.fractionalCuts`),
 * in whole runs: cut to the cash at hand, and capped by a volume limit, on micro-units as every
 * other order of the strategy is — not in whole units, which left cash unspent and a thin bar
 * unfilled. A strategy of whole units records nothing new; a run recorded before it is re-executed
 * cutting whole units, as it recorded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import { ofTag, record, recordedBefore, registryOf } from "./recorded.js"

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)

/** Daily bars of AAA: [open, close, volume]. */
const bars = (rows: ReadonlyArray<readonly [open: number, close: number, volume: number]>): Array<Bar> =>
  rows.map(([open, close, volume], i) => ({
    symbol: "AAA" as Bar["symbol"],
    ts: (START + i * DAY) as Bar["ts"],
    open,
    high: Math.max(open, close),
    low: Math.min(open, close),
    close,
    volume
  }))
const feedOf = (series: Array<Bar>) => Feed.fromBars(new Map([[series[0]!.symbol, series]]), { fingerprint: "test:fractional-cuts" })
/** 10 units a decision (fixed), fractional or not; 2,000 of cash. */
const strategyOf = (fractional: boolean, execution: object = {}) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "fractional cuts",
    symbols: ["AAA"],
    initialCash: "2000",
    agents: [{ type: "test_script" }],
    sizing: { mode: "fixed_quantity", value: 10, fractional },
    execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" }, ...execution }
  })
const registry = registryOf({ AAA: ["long"] })
/** Bought on bar 0 at a close of 50 (500 of 2,000: within every gate); bar 1 opens at 300: 3,000 asked, 2,000 at hand. */
const gap = bars([[50, 50, 1_000], [300, 300, 1_000], [300, 300, 1_000]])

const filled = (events: Parameters<typeof ofTag>[0]) => ofTag(events, "OrderFilled").map((e) => e.fill.quantity)

describe("a fractional strategy's order of a whole number of units", () => {
  it.effect("is cut to the cash at hand on micro-units: 6.666666 of 10 at 300 with 2,000, not 6", () =>
    Effect.gen(function*() {
      const { events } = yield* record({ strategy: strategyOf(true), feed: feedOf(gap), registry })
      expect(events[0]).toMatchObject({ _tag: "RunStarted", fractionalCuts: "micro" })
      expect(ofTag(events, "OrderPlaced").map((e) => e.order.quantity)).toEqual([10])
      expect(filled(events)).toEqual([6.666666])
      for (const e of ofTag(events, "PortfolioUpdated")) expect(e.snapshot.cash).toBeGreaterThanOrEqual(0)
    }))

  it.effect("is capped by a volume limit on micro-units: a bar whose share is 0.5 fills 0.5, not nothing", () =>
    Effect.gen(function*() {
      // 10 % of 5 is 0.5 a bar: in whole units no bar would ever fill any of it.
      const thin = bars([[50, 50, 5], [50, 50, 5], [50, 50, 5], [50, 50, 5]])
      const { events } = yield* record({ strategy: strategyOf(true, { maxVolumePercent: 10 }), feed: feedOf(thin), registry })
      expect(events[0]).toMatchObject({ _tag: "RunStarted", fractionalCuts: "micro", workingOrders: "kept" })
      expect(filled(events)).toEqual([0.5, 0.5, 0.5])
    }))

  it.effect("a strategy of whole units cuts whole units and records nothing new", () =>
    Effect.gen(function*() {
      const { events } = yield* record({ strategy: strategyOf(false), feed: feedOf(gap), registry })
      expect(events[0]).not.toHaveProperty("fractionalCuts")
      expect(filled(events)).toEqual([6])
    }))

  it.effect("a run recorded before it (no fractionalCuts) is re-executed cutting whole units, as it recorded", () =>
    Effect.gen(function*() {
      const { events } = yield* record({ strategy: strategyOf(true), feed: feedOf(gap), registry, recordedStart: recordedBefore })
      expect(events[0]).not.toHaveProperty("fractionalCuts")
      expect(filled(events)).toEqual([6])
    }))
})
