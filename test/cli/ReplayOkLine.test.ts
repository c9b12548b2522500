import { describe, expect, it } from "@effect/vitest"
import { okLine } from "../../src/cli/ReplayCommand.js"
import type { RunId } from "../../schemas/Ids.js"
import type * as StoredRun from "../../src/store/StoredRun.js"

const replayed = (over: Partial<StoredRun.Replayed>): StoredRun.Replayed => ({
  run: "run_1" as RunId,
  events: 385_319,
  checksum: "ab".repeat(32),
  result: undefined,
  status: "completed",
  ...over
} as StoredRun.Replayed)

describe("replay's OK line", () => {
  it("prints the event count with thousands separators, as every other count the CLI prints", () => {
    expect(okLine(replayed({}), "backtest")).toBe(`OK: run run_1 reproduced: 385,319 events, checksum ${"ab".repeat(32)}\n`)
    expect(okLine(replayed({ status: "stopped" }), "paper")).toBe(
      `OK: run run_1 reproduced the 385,319 events recorded, checksum ${"ab".repeat(32)}: it was stopped there\n`
    )
    expect(okLine(replayed({ failure: "risk.approval.policy: paused" }), "backtest")).toBe(
      `OK: run run_1 reproduced, including its failure (risk.approval.policy: paused): 385,319 events, checksum ${"ab".repeat(32)}\n`
    )
  })
})
