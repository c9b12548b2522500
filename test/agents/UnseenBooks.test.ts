/**
 * When the risk officer cannot see the books, `ExecutionBlocked` says why in words: a ledger that
 * did not answer in time waits for the execution desk's marks, so a desk that is down is named —
 * the reason used to be "the ledger did not show its books: ViewBooks" (an ask error's `message`
 * field is the message's tag), which blamed the ledger for the desk.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { unseenBooks } from "../../agents/RiskOfficer.js"
import { AskTimeout, MailboxFull, NoReply } from "../../schemas/ActorError.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"

const T = Date.UTC(2024, 0, 2)

describe("unseenBooks", () => {
  it("says what each ask error means", () => {
    expect(unseenBooks(new AskTimeout({ actor: "run/ledger" as never, message: "ViewBooks", timeoutMillis: 1000 }), T)).toBe(
      "the ledger did not show its books as of 2024-01-02T00:00:00.000Z within 1000 ms: it shows them once the execution desk has marked that bar, so the desk (or the ledger) may be down"
    )
    expect(unseenBooks(new NoReply({ actor: "run/ledger" as never, message: "ViewBooks", reason: "crashed", detail: "boom" }), T)).toBe(
      "the ledger did not show its books as of 2024-01-02T00:00:00.000Z: it crashed (boom)"
    )
    expect(unseenBooks(new MailboxFull({ actor: "run/ledger" as never, capacity: 64, policy: "fail" }), T)).toMatch(/its mailbox was full \(64 messages\)$/)
  })

  it.effect("a backtest whose execution desk keeps crashing blocks rounds, naming the desk", () =>
    Effect.gen(function*() {
      const events: Array<RunEvent> = []
      yield* Backtest.run({
        strategy: Schema.decodeUnknownSync(Strategy)({ name: "no desk", symbols: ["AAA"], agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }] }),
        feed: Feed.synthetic({ ...Synthetic.defaults, seed: 5, symbols: ["AAA"] as never, bars: 60 }),
        // Every other message: a desk that handles some in between is restarted, not given up on (Run.ts).
        faults: { desk: (_message, received) => received % 2 === 0 },
        onEvent: (event) => events.push(event)
      })
      const blocked = events.flatMap((e) => (e._tag === "ExecutionBlocked" ? [e.reason] : []))
      expect(blocked.length).toBeGreaterThan(0)
      for (const reason of blocked) expect(reason).toMatch(/^the ledger did not show its books as of .+: it shows them once the execution desk has marked that bar, so the desk/)
    }))
})
