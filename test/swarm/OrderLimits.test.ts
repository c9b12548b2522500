/**
 * What docs/backtest-engine.md says of orders the rules exempt and of cuts at the fill, in whole
 * runs (the real coordinator, risk officer, desk and ledger; a scripted analyst): a risk-reducing
 * order a `max_orders_per_day` rule lets through still counts toward the day's total, and a buy the
 * desk cuts at the fill for lack of cash is not ordered again later.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import { ofTag, record, registryOf } from "./recorded.js"

const HOUR = 3_600_000
const START = Date.UTC(2024, 0, 1)

/** Bars of AAA from 2024-01-01, `step` apart, at these opens and closes. */
const bars = (step: number, prices: ReadonlyArray<readonly [open: number, close: number]>): Array<Bar> =>
  prices.map(([open, close], i) => ({
    symbol: "AAA" as Bar["symbol"],
    ts: (START + i * step) as Bar["ts"],
    open,
    high: Math.max(open, close),
    low: Math.min(open, close),
    close,
    volume: 1_000
  }))
const feedOf = (series: Array<Bar>) => Feed.fromBars(new Map([[series[0]!.symbol, series]]), { fingerprint: "test:order-limits" })
const strategyOf = (fields: object) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "order limits",
    symbols: ["AAA"],
    initialCash: "100000",
    agents: [{ type: "test_script" }],
    sizing: { mode: "percent_of_equity", value: 50 },
    ...fields
  })

describe("orders and their limits", () => {
  it.effect("a risk-reducing order a max_orders_per_day rule exempts still counts toward the day's total", () =>
    Effect.gen(function*() {
      // Hourly, one day: bought on bar 0 (order 1), sold on bar 1 (risk-reducing, exempt: order 2),
      // bought again on bar 2 — order 3, past the limit of 2.
      const { events } = yield* record({
        strategy: strategyOf({
          execution: { fillTiming: "same_close", slippageBps: 0, commission: { _tag: "none" } },
          rules: [{ kind: "max_orders_per_day", id: "two", name: "two a day", params: { count: 2 } }]
        }),
        feed: feedOf(bars(HOUR, [[100, 100], [100, 100], [100, 100], [100, 100]])),
        registry: registryOf({ AAA: ["long", "flat", "long"] })
      })
      const verdicts = ofTag(events, "VerdictGiven").map((e) => e.verdict)
      const rule = (i: number) => verdicts[i]!.rules.find((r) => r.rule === "two")!
      expect(verdicts.slice(0, 3).map((v) => [v.intent.side, v.outcome])).toEqual([["buy", "approved"], ["sell", "approved"], ["buy", "rejected"]])
      expect(rule(1)).toMatchObject({ result: "pass", reason: expect.stringContaining("risk-reducing") })
      expect(rule(2)).toMatchObject({ result: "reject", reason: "would be order 3 today (limit 2 per day)" })
      expect(ofTag(events, "OrderPlaced")).toHaveLength(2)
    }))

  it.effect("a buy cut at the fill for lack of cash is not ordered again: the position stays at what filled", () =>
    Effect.gen(function*() {
      // 500 at 100 decided on bar 0 (half the equity); bar 1 opens at 250: the cash buys 400.
      const { events, result } = yield* record({
        strategy: strategyOf({ execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } } }),
        feed: feedOf(bars(24 * HOUR, [[100, 100], [250, 250], [250, 250], [250, 250], [250, 250]])),
        registry: registryOf({ AAA: ["long"] })
      })
      const fills = ofTag(events, "OrderFilled").map((e) => e.fill)
      expect(fills.map((f) => [f.quantity, f.reduced])).toEqual([[400, expect.stringContaining("cut from 500 to 400")]])
      // The consensus stands long on every bar after: nothing more is ordered.
      expect(ofTag(events, "OrderPlaced")).toHaveLength(1)
      expect(result.portfolio.positions.map((p) => [p.symbol, p.quantity])).toEqual([["AAA", 400]])
    }))
})
