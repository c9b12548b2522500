/** The market brief: its compact JSON is exactly the brief's, and it holds only the bars folded so far. */
import { describe, expect, it } from "@effect/vitest"
import { briefMessage, briefUserMessage } from "../../agents/analysts/internal/llm.js"
import { BriefTracker, briefJson, briefJsonEscaped } from "../../agents/analysts/MarketBrief.js"
import { PreparedMessage } from "../../src/llm/PreparedMessage.js"
import type { Timestamp } from "../../schemas/Ids.js"
import * as Synthetic from "../../src/market/Synthetic.js"

const market = Synthetic.generate(Synthetic.sampleConfig)
const [symbol] = [...market.bars.keys()]
const bars = market.bars.get(symbol!)!

describe("the market brief", () => {
  it("its JSON, built from each bar's cached JSON, is JSON.stringify of the brief, bar after bar", () => {
    const tracker = new BriefTracker(20)
    for (let i = 0; i < 120; i++) {
      tracker.update(bars[i]!)
      const context = i % 3 === 0
        ? undefined
        : { target: i % 2 === 0 ? "long" as const : "short" as const, decisions: [{ ts: bars[0]!.ts as Timestamp, action: "long" as const, confidence: 0.123456 }] }
      const brief = tracker.brief(context)
      expect(briefJson(brief)).toBe(JSON.stringify(brief))
      expect(brief.bars).toHaveLength(Math.min(i + 1, 20))
      expect(brief.asOf).toBe(new Date(bars[i]!.ts).toISOString())
      expect(brief.bars.every((b) => Date.parse(b.t) <= bars[i]!.ts)).toBe(true)
    }
  })

  it("its decisions follow the context's, whether the sender rebuilds, keeps or changes them in place", () => {
    const tracker = new BriefTracker(20)
    const at = (i: number) => bars[i]!.ts as Timestamp
    const kept = [{ ts: at(1), action: "long" as const, confidence: 0.5 }]
    const changedInPlace: Array<{ ts: Timestamp; action: "long" | "short" | "flat"; confidence: number }> = [{ ts: at(2), action: "long", confidence: 0.25 }]
    const contexts = [
      undefined,
      { target: "long" as const, decisions: kept },
      { target: "long" as const, decisions: kept },
      // The same values in a new array, then other values.
      { target: "long" as const, decisions: [{ ts: at(1), action: "long" as const, confidence: 0.5 }] },
      { target: "long" as const, decisions: [{ ts: at(1), action: "long" as const, confidence: 0.75 }] },
      { target: "short" as const, decisions: [{ ts: at(1), action: "long" as const, confidence: 0.75 }, { ts: at(3), action: "short" as const, confidence: 0.6 }] },
      { target: "flat" as const, decisions: [] },
      { target: "long" as const, decisions: changedInPlace },
      "change in place" as const,
      { target: "long" as const, decisions: changedInPlace },
      undefined
    ]
    const seen = new Set<string>()
    for (let i = 0; i < contexts.length; i++) {
      tracker.update(bars[i]!)
      const context = contexts[i]
      if (context === "change in place") {
        changedInPlace[0] = { ts: at(4), action: "flat", confidence: 0.125 }
        continue
      }
      const brief = tracker.brief(context)
      const expected = (context?.decisions ?? []).map((d) => ({ t: new Date(d.ts).toISOString(), action: d.action, confidence: d.confidence }))
      expect(brief.decisions).toEqual(expected)
      expect(briefJson(brief)).toBe(JSON.stringify(brief))
      expect(briefJsonEscaped(brief)).toBe(JSON.stringify(briefJson(brief)).slice(1, -1))
      seen.add(JSON.stringify(brief.decisions))
    }
    expect(seen.size).toBe(6)
  })

  it("the brief's user message: its prepared JSON, from the bars' escaped pieces, is JSON.stringify of the message, whatever the symbol's characters", () => {
    for (const name of ["ACME", `Q"UOTE\\BACK`, "ÉCU€😀", "tab\tline\nend"]) {
      const tracker = new BriefTracker(20)
      for (let i = 0; i < 40; i++) {
        tracker.update({ ...bars[i]!, symbol: name as never })
        const context = i % 2 === 0 ? undefined : { target: "long" as const, decisions: [{ ts: bars[0]!.ts as Timestamp, action: "long" as const, confidence: 0.5 }] }
        const brief = tracker.brief(context)
        const message = briefUserMessage(brief)
        expect(message.content).toBe(briefMessage(brief))
        expect(PreparedMessage.json(message)).toBe(JSON.stringify({ role: "user", content: briefMessage(brief) }))
        expect(JSON.stringify(message)).toBe(JSON.stringify({ role: "user", content: briefMessage(brief) }))
        expect(briefJsonEscaped(brief)).toBe(JSON.stringify(briefJson(brief)).slice(1, -1))
      }
    }
  })

  it("indicators come as they warm up; every value is finite and rounded", () => {
    const tracker = new BriefTracker(10)
    tracker.update(bars[0]!)
    expect(Object.keys(tracker.brief(undefined).indicators)).toEqual([])
    for (let i = 1; i < 40; i++) tracker.update(bars[i]!)
    const { indicators } = tracker.brief(undefined)
    expect(Object.keys(indicators).sort()).toEqual(
      ["bollingerLower", "bollingerUpper", "change1Pct", "change20Pct", "change5Pct", "ema12", "ema26", "macd", "macdHistogram", "macdSignal", "rsi14", "sma10", "sma30"]
    )
    for (const value of Object.values(indicators)) expect(Math.round(value * 10_000) / 10_000).toBe(value)
  })
})
