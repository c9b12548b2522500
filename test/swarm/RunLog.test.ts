/**
 * The run log's held trading-state changes (RunLog.holdTransition): recorded at the point of the
 * slice the holder or the driver chooses, counted by `tradingState` at once, and recorded before any
 * other trading-state change so that the chain of states stays whole.
 */
import { createHash } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import type { RunId, Timestamp } from "../../schemas/Ids.js"
import type { StateTransition } from "../../schemas/Risk.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { RunLog } from "../../src/swarm/RunLog.js"

const halt: StateTransition = { from: "active", to: "halted", cause: "drawdown_halt", at: 5 as Timestamp, reason: "down 30%", actor: null }

const logged = () => {
  let now = 5
  const log = new RunLog("r1" as RunId, () => now)
  const events: Array<RunEvent> = []
  log.subscribe((event) => events.push(event))
  return { log, events, later: () => (now += 1) }
}

describe("a run log's held trading-state changes", () => {
  it("are counted at once and recorded at the slice's end, with the time it ends at", () => {
    const { events, later, log } = logged()
    log.holdTransition(halt)
    expect(events).toEqual([])
    expect(log.tradingState).toBe("halted")
    expect(log.lastTransition).toEqual(halt)
    later()
    log.endSlice()
    expect(events).toEqual([{ _tag: "TradingStateChanged", run: "r1", seq: 1, at: 6, transition: halt }])
    log.endSlice()
    expect(events).toHaveLength(1)
    expect(log.tradingState).toBe("halted")
  })

  it("are recorded when released, and before any other trading-state change", () => {
    const { events, log } = logged()
    log.holdTransition(halt)
    log.emit("DeadLetterRecorded", { recipient: "/user/x" as never, message: "m", reason: "stopped" })
    log.releaseTransitions()
    expect(events.map((e) => e._tag)).toEqual(["DeadLetterRecorded", "TradingStateChanged"])
    const lift: StateTransition = { ...halt, from: "halted", to: "active", cause: "operator", actor: "alice" }
    const again: StateTransition = { ...halt }
    log.holdTransition(lift)
    log.holdTransition(again)
    log.emit("TradingStateChanged", { transition: { ...halt, from: "halted", to: "reducing", cause: "operator", actor: "bob" } })
    expect(events.slice(2).map((e) => e._tag === "TradingStateChanged" && [e.transition.from, e.transition.to])).toEqual([
      ["halted", "active"],
      ["active", "halted"],
      ["halted", "reducing"]
    ])
    expect(log.tradingState).toBe("reducing")
  })

  it("are not recorded once the log is sealed", () => {
    const { events, log } = logged()
    log.holdTransition(halt)
    log.seal()
    log.endSlice()
    expect(events).toEqual([])
  })
})

describe("a run log's checksum", () => {
  // Lines are hashed a chunk at a time (RunLog.flush): however they are gathered, the checksum is
  // SHA-256 over the lines, each followed by `\n`, as the module says and `--out` files are checked by.
  it("is SHA-256 of its lines, each followed by a newline: tails, characters past Latin-1, long lines, many chunks", () => {
    const { log } = logged()
    const lines: Array<string> = []
    log.subscribe((_, json) => lines.push(json))
    const brief = { symbol: "S000", note: "x".repeat(300) }
    for (let i = 0; i < 400; i++) {
      const text = i % 7 === 0 ? "score 0.5 → long, ✓ 😀" : i % 50 === 0 ? "é".repeat(40_000) : `plan ${i}`
      if (i % 3 === 0) {
        log.emit("ReasoningRecorded", { agent: "a" as never, round: `S000@${i}` as never, kind: "decision", role: "analyst", text }, {
          key: "context",
          value: brief,
          json: JSON.stringify(brief)
        })
      } else {
        log.emit("ReasoningRecorded", { agent: "a" as never, round: `S000@${i}` as never, kind: "plan", role: "analyst", text })
      }
      if (i === 123) expect(log.checksum()).toBe(createHash("sha256").update(lines.map((line) => `${line}\n`).join("")).digest("hex"))
    }
    // Lines longer than a chunk, as UTF-8 (64 KB): a faster way of hashing must not split or skip them.
    expect(lines.some((line) => Buffer.byteLength(line) > 65_536)).toBe(true)
    expect(log.checksum()).toBe(createHash("sha256").update(lines.map((line) => `${line}\n`).join("")).digest("hex"))
    expect(JSON.parse(lines[0]!).context).toEqual(brief)
  })
})
