/** Ask deadlines on a clock that runs callbacks (the world's VirtualClock): one armed entry, no fiber. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Deadlines } from "../../src/actor/internal/timers.js"
import { VirtualClock } from "../../src/swarm/VirtualClock.js"

const setup = () => {
  const clock = new VirtualClock(0)
  const deadlines = new Deadlines(clock)
  const fired: Array<string> = []
  const at = (label: string) => () => fired.push(`${label}@${clock.unsafeCurrentTimeMillis()}`)
  const runTo = (t: number) => {
    while (clock.wakeNext(t));
  }
  return { clock, deadlines, fired, at, runTo }
}

describe("ask deadlines on a virtual clock", () => {
  it("each expires at its own time, in order, however they were added", () => {
    const { clock, deadlines, fired, at, runTo } = setup()
    expect(deadlines.needsFiber).toBe(false)
    deadlines.add(30, at("c"))
    deadlines.add(10, at("a"))
    deadlines.add(20, at("b"))
    // One clock entry, for the earliest, whatever the number of deadlines.
    expect(clock.pending).toBe(1)
    expect(clock.nextWakeup).toBe(10)
    runTo(100)
    expect(fired).toEqual(["a@10", "b@20", "c@30"])
    expect(clock.pending).toBe(0)
  })

  it("a deadline added by an expiry does not push back an earlier one", () => {
    const { deadlines, fired, at, runTo } = setup()
    deadlines.add(10, () => {
      at("a")()
      deadlines.add(30, at("c"))
    })
    deadlines.add(20, at("b"))
    runTo(100)
    expect(fired).toEqual(["a@10", "b@20", "c@30"])
  })

  it("removing the last deadline leaves nothing on the clock; closing stops expiries", () => {
    const { clock, deadlines, fired, at, runTo } = setup()
    const answered = deadlines.add(10, at("answered"))
    deadlines.remove(answered)
    expect(clock.pending).toBe(0)
    deadlines.add(20, at("late"))
    Effect.runSync(deadlines.close)
    deadlines.add(25, at("after close"))
    expect(clock.pending).toBe(0)
    runTo(100)
    expect(fired).toEqual([])
  })
})
