/**
 * The run log's held trading-state changes (RunLog.holdTransition): recorded at the point of the
 * slice the holder or the driver chooses, counted by `tradingState` at once, and recorded before any
 * other trading-state change so that the chain of states stays whole.
 */
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
