/**
 * A backtest whose policy is "pause", run with no operator attached (`approver` unset), fails at
 * its first intent that needs approval as any run fails: status `failed`, the reason naming the
 * policy and the round, and its log ending with `RunFailed` — not an error that leaves the log
 * without an end.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"

it.effect("a paused intent with no operator fails the run, and its log ends with RunFailed", () =>
  Effect.gen(function*() {
    const events: Array<RunEvent> = []
    const result = yield* Backtest.run({
      strategy: Schema.decodeUnknownSync(Strategy)({
        name: "unattended",
        symbols: ["AAA"],
        agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
        risk: { approval: { notionalPctAbove: 1, policy: "pause" } }
      }),
      feed: Feed.synthetic({ ...Synthetic.defaults, seed: 5, symbols: ["AAA"] as never, bars: 200 }),
      onEvent: (event) => events.push(event)
    })
    expect(result.status).toBe("failed")
    expect(result.failure).toMatch(/^risk\.approval\.policy: round AAA@\d+ needs approval \(.+\) and the policy is "pause", but no operator is attached/)
    const last = events.at(-1)!
    expect(last._tag).toBe("RunFailed")
    expect(last._tag === "RunFailed" && last.reason).toBe(result.failure)
    // It stopped at that slice: the request is the last thing it did before failing.
    const requested = events.findIndex((e) => e._tag === "ApprovalRequested")
    expect(requested).toBeGreaterThan(0)
    expect(events.slice(requested + 1).every((e) => e._tag === "ApprovalRequested" || e._tag === "RunFailed" || e._tag === "PortfolioUpdated" || e._tag === "SignalNotApplied")).toBe(true)
  }))

it.effect("a recording that ends while its slice waits for approvals ends there, asking nobody", () =>
  Effect.gen(function*() {
    const options = {
      strategy: Schema.decodeUnknownSync(Strategy)({
        name: "stopped while held",
        symbols: ["AAA"],
        agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
        risk: { approval: { notionalPctAbove: 1, policy: "pause" } }
      }),
      feed: Feed.synthetic({ ...Synthetic.defaults, seed: 5, symbols: ["AAA"] as never, bars: 200 })
    } satisfies Backtest.Options
    const events: Array<RunEvent> = []
    yield* Backtest.run({ ...options, onEvent: (event) => events.push(event) })
    // As a run stopped while its first intent waited: its recording ends at the request.
    const end = events.findIndex((e) => e._tag === "ApprovalRequested") + 1
    const asked: Array<string> = []
    const replayed = yield* Backtest.run({
      ...options,
      endAfter: end,
      approver: (request) => Effect.sync(() => (asked.push(request.round), { approved: true, by: "nobody", reason: "should not be asked" }))
    })
    expect(replayed.failure).toBe(`the recording ends at event ${end}: the run was stopped there`)
    expect(asked).toEqual([])
  }))
