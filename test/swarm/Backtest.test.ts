/**
 * Whole runs: the swarm assembled from a strategy, driven over a feed in its world. Determinism,
 * no look-ahead, supervised failures (an analyst crashing every Nth message, the risk officer
 * crashing), approval policies, the event log's invariants and bad input.
 */
import { createHash } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Option, Schema, Tracer } from "effect"
import { analysts } from "../../agents/registry.js"
import type { AnyModel, Model } from "../../agents/analysts/Model.js"
import * as SmaCrossover from "../../agents/analysts/SmaCrossover.js"
import * as LlmAnalyst from "../../agents/LlmAnalyst.js"
import type { Bar } from "../../schemas/Market.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { RunEvent as RunEventSchema } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import type * as Run from "../../src/swarm/Run.js"
import { ofTag, record, registryOf } from "./recorded.js"
import { crashingEvery, sulky } from "./crashing.js"

const symbols = ["AAA", "BBB", "CCC"] as const
const market = (bars: number, seed = 7) => Feed.synthetic({ ...Synthetic.defaults, seed, symbols: [...symbols] as never, bars })

const strategy = (overrides: Record<string, unknown> = {}) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "test",
    symbols,
    initialCash: "100000",
    allowShort: true,
    agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "ema_crossover", params: { fast: 5, slow: 20 } }],
    sizing: { mode: "percent_of_equity", value: 10 },
    execution: { slippageBps: 5, commission: { _tag: "percent", rate: 0.0005 } },
    ...overrides
  })


describe("a backtest", () => {
  it.effect("runs the strategy's swarm over the feed: rounds, decisions, orders, fills and the books agree", () =>
    Effect.gen(function*() {
      const { events, lines, result } = yield* record({ strategy: strategy(), feed: market(300) })
      expect(result.status).toBe("completed")
      expect(result.counts.bars).toBe(900)
      expect(result.counts.rounds).toBe(900)
      expect(result.counts.orders).toBeGreaterThan(5)
      expect(result.counts.fills).toBe(ofTag(events, "OrderFilled").length)
      // Sequence numbers 1..n without a gap; RunStarted first, RunCompleted last.
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
      expect(events[0]!._tag).toBe("RunStarted")
      expect(events.at(-1)!._tag).toBe("RunCompleted")
      // The checksum is SHA-256 over the canonical lines before RunCompleted, each with a newline.
      const hash = createHash("sha256")
      for (const line of lines.slice(0, -1)) hash.update(`${line}\n`)
      expect(result.checksum).toBe(hash.digest("hex"))
      expect(ofTag(events, "RunCompleted")[0]!.checksum).toBe(result.checksum)
      // Every line decodes as a RunEvent and is the JSON of its event.
      for (const [i, event] of events.entries()) {
        expect(Either.isRight(Schema.decodeUnknownEither(RunEventSchema)(JSON.parse(lines[i]!)))).toBe(true)
        expect(JSON.parse(lines[i]!)).toEqual(JSON.parse(JSON.stringify(event)))
      }
      // No order without a verdict that let it through; no fill without an order.
      const passed = new Set(ofTag(events, "VerdictGiven").filter((v) => v.verdict.outcome === "approved" || v.verdict.outcome === "reduced").map((v) => v.verdict.intent.round))
      for (const placed of ofTag(events, "OrderPlaced")) expect(passed.has(placed.order.round)).toBe(true)
      const orders = new Set(ofTag(events, "OrderPlaced").map((e) => e.order.id))
      for (const filled of ofTag(events, "OrderFilled")) expect(orders.has(filled.fill.orderId)).toBe(true)
      // Fills happen at a later bar's open (no look-ahead by default).
      const decidedAt = new Map(ofTag(events, "OrderPlaced").map((e) => [e.order.id, e.order.decidedAt]))
      for (const filled of ofTag(events, "OrderFilled")) expect(filled.fill.ts).toBeGreaterThan(decidedAt.get(filled.fill.orderId)!)
      // The final books: cash + Σ market values = equity = the metrics' final equity.
      const p = result.portfolio
      expect(p.cash + p.positions.reduce((s, x) => s + x.marketValue, 0)).toBe(p.equity)
      expect(result.metrics.finalEquity).toBe(p.equity)
      expect(result.metrics.tradeCount).toBe(result.trades.length)
      expect(ofTag(events, "TradeClosed").length).toBe(result.trades.length)
    }))

  it.effect("a paper run reports the whole book at every bar it holds a position: equity moves with the market, not only at fills", () =>
    Effect.gen(function*() {
      const paper = yield* record({ strategy: strategy(), feed: market(120), mode: "paper" })
      const backtest = yield* record({ strategy: strategy(), feed: market(120) })
      // The same trading.
      for (const tag of ["DecisionMade", "OrderPlaced", "OrderFilled", "TradeClosed"] as const) {
        expect(ofTag(paper.events, tag).map((e) => JSON.stringify({ ...e, seq: 0 }))).toEqual(ofTag(backtest.events, tag).map((e) => JSON.stringify({ ...e, seq: 0 })))
      }
      const backtestMarks = ofTag(backtest.events, "PortfolioUpdated")
      const paperMarks = ofTag(paper.events, "PortfolioUpdated")
      expect(backtestMarks.length).toBe(new Set(ofTag(backtest.events, "OrderFilled").map((e) => e.fill.ts)).size)
      // From the first fill on, a snapshot per timestamp (the book is never flat here again), each
      // listing every open position at its mark; the last is the books the run ended with.
      const firstFill = ofTag(paper.events, "OrderFilled")[0]!.fill.ts
      const times = paperMarks.map((e) => e.snapshot.ts)
      expect(times[0]).toBe(firstFill)
      expect(times.at(-1)).toBe(paper.result.to)
      expect(times.every((ts, i) => i === 0 || ts > times[i - 1]!)).toBe(true)
      expect(paperMarks.length).toBeGreaterThan(backtestMarks.length + 50)
      const last = paperMarks.at(-1)!.snapshot
      expect(last.equity).toBe(paper.result.portfolio.equity)
      expect(last.positions).toEqual(paper.result.portfolio.positions.filter((p) => p.quantity !== 0))
    }))

  it.effect("is deterministic: the same inputs and seed give the same events, byte for byte", () =>
    Effect.gen(function*() {
      const a = yield* record({ strategy: strategy(), feed: market(250), seed: "42" })
      const b = yield* record({ strategy: strategy(), feed: market(250), seed: "42" })
      expect(b.lines).toEqual(a.lines)
      expect(b.result.checksum).toBe(a.result.checksum)
      expect(b.result).toEqual(a.result)
      // A different seed is a different run (its id), and different data a different checksum.
      const c = yield* record({ strategy: strategy(), feed: market(250), seed: "43" })
      expect(c.result.runId).not.toBe(a.result.runId)
      const d = yield* record({ strategy: strategy(), feed: market(250, 8), seed: "42" })
      expect(d.result.checksum).not.toBe(a.result.checksum)
    }))

  it.effect("started under a span, its messages are not traced under it (a span per message would cost every message)", () =>
    Effect.gen(function*() {
      const spans: Array<string> = []
      const counting = Tracer.make({
        span: (name, parent, context, links, startTime, kind, options) => {
          spans.push(name)
          return Effect.runSync(Effect.map(Effect.tracer, (t) => t.span(name, parent, context, links, startTime, kind, options)))
        },
        context: (f) => f()
      })
      const { result } = yield* record({ strategy: strategy(), feed: market(100) }).pipe(
        Effect.withSpan("caller"),
        Effect.withTracer(counting)
      )
      expect(result.counts.rounds).toBeGreaterThan(200)
      // The caller's span and nothing per message: hundreds of messages went between the agents.
      expect(spans).toEqual(["caller"])
    }))

  it.effect("cannot look ahead: data after bar t does not change any decision, verdict or order made at or before t", () =>
    Effect.gen(function*() {
      const full = yield* record({ strategy: strategy(), feed: market(300), runId: "r" as never })
      const cut = [...market(300)][149]!.ts
      const truncated = Feed.fromBars(
        new Map(symbols.map((s) => [s, [...market(300)].flatMap((slice) => slice.bars.filter((b) => b.symbol === s && b.ts <= cut))])) as never,
        { fingerprint: "truncated" }
      )
      const part = yield* record({ strategy: strategy(), feed: truncated, runId: "r" as never })
      const upTo = (events: ReadonlyArray<RunEvent>) =>
        events.filter((e) => e.at <= cut && e._tag !== "RunStarted" && e._tag !== "RunCompleted").map((e) => JSON.stringify(e))
      expect(upTo(part.events).length).toBeGreaterThan(20)
      expect(upTo(part.events)).toEqual(upTo(full.events))
    }))

  it.effect("an analyst crashing every Nth message is restarted, abstains meanwhile, and the run completes; restarts show in the events", () =>
    Effect.gen(function*() {
      const registry = new Map([...analysts, ["crashy", crashingEvery(3 * 40)]])
      const { events, result } = yield* record({
        strategy: strategy({ agents: [{ type: "crashy", params: { fast: 5, slow: 20 } }, { type: "ema_crossover", params: { fast: 5, slow: 20 } }] }),
        feed: market(400),
        registry
      })
      expect(result.status).toBe("completed")
      const lifecycle = ofTag(events, "AgentLifecycle").map((e) => e.event)
      const crashes = lifecycle.filter((e) => e._tag === "ActorCrashed" && e.actor.endsWith("/crashy"))
      const restarts = lifecycle.filter((e) => e._tag === "ActorRestarted" && e.actor.endsWith("/crashy"))
      // 400 bars × 3 symbols, one crash per 120 bars folded: every 40th message.
      expect(crashes.length).toBe(10)
      // The tenth crash is on the last bar: the run ends before its backoff does.
      expect(restarts.length).toBe(9)
      expect(result.counts.restarts).toBe(9)
      // Which agent: named, with its type, its restarts and crashes, and its last crash's cause.
      expect(result.agentRestarts).toEqual([{
        agent: "crashy",
        actor: "/user/run/analysts/crashy",
        type: "crashy",
        restarts: 9,
        crashes: 10,
        lastCause: "Error: crashy: bar 1200",
        lastCrashSeq: events.find((e) => e._tag === "AgentLifecycle" && e.event === crashes.at(-1))!.seq
      }])
      expect(crashes.at(-1)!.at).toBe(result.to)
      // Decisions kept coming after the crashes, and orders executed.
      const lastCrash = crashes.at(-2)!.at
      expect(ofTag(events, "OrderFilled").some((e) => e.at > lastCrash)).toBe(true)
    }))

  it.effect("the crashed analyst's rounds record a failed abstention", () =>
    Effect.gen(function*() {
      const registry = new Map([...analysts, ["crashy", crashingEvery(3 * 30)]])
      const { events } = yield* record({
        strategy: strategy({ agents: [{ type: "crashy", params: { fast: 5, slow: 20 } }, { type: "ema_crossover", params: { fast: 5, slow: 20 } }] }),
        feed: market(200),
        registry,
        events: "rounds"
      })
      const failed = ofTag(events, "DecisionMade").filter((e) => e.decision.abstentions.some((a) => a.agent === "crashy" && a.reason === "failed"))
      expect(failed.length).toBe(3 * 6) // six crashing messages, three rounds each
    }))

  it.effect("the risk officer crashing: nothing executes, the run says so, and trading resumes once it is back", () =>
    Effect.gen(function*() {
      const baseline = yield* record({ strategy: strategy(), feed: market(300) })
      expect(baseline.result.counts.orders).toBeGreaterThan(0)
      // Crashes on every request to judge: no order ever executes, and a risk officer that fails on
      // every message it is given ends the run, failed, saying so.
      const down = yield* record({
        strategy: strategy(),
        feed: market(300),
        faults: { risk: (message) => (message as { _tag: string })._tag === "Judge" }
      })
      expect(down.result.status).toBe("failed")
      expect(down.result.failure).toContain("/user/run/risk kept failing (4 failures of /user/run/risk in a row without a message handled): Error: injected fault: risk crashed on message 4")
      expect(down.result.counts.orders).toBe(0)
      expect(ofTag(down.events, "OrderPlaced")).toEqual([])
      expect(ofTag(down.events, "OrderFilled")).toEqual([])
      const blocked = ofTag(down.events, "ExecutionBlocked")
      expect(blocked.length).toBeGreaterThan(0)
      expect(blocked[0]!.reason).toMatch(/^the risk officer did not answer \(Judge got no reply: the agent crashed( \(.+\))?\): nothing executes until it is back$/)
      expect(ofTag(down.events, "AgentLifecycle").some((e) => e.event._tag === "ActorRestarted" && e.event.actor.endsWith("/risk"))).toBe(true)
      // The first blocked round halts trading, saying why; it stays halted to the end.
      const halts = ofTag(down.events, "TradingStateChanged")
      expect(halts.map((e) => e.transition)).toEqual([
        { from: "active", to: "halted", cause: "system", at: blocked[0]!.ts, reason: expect.stringMatching(/^the risk officer is down \(.+\): nothing executes until it answers again$/), actor: null }
      ])
      expect(halts[0]!.seq).toBe(blocked[0]!.seq + 1)
      expect(down.result.tradingState).toBe("halted")
      // Crashes on its first request only: that decision is blocked, then offered again and executed on the next bar.
      const once = yield* record({
        strategy: strategy(),
        feed: market(300),
        faults: { risk: (message, received) => (message as { _tag: string })._tag === "Judge" && received === 1 }
      })
      const [first] = ofTag(once.events, "ExecutionBlocked")
      expect(first).toBeDefined()
      const firstOrder = ofTag(once.events, "OrderPlaced")[0]!
      expect(firstOrder.order.symbol).toBe(first!.rounds[0]!.split("@")[0])
      expect(firstOrder.order.decidedAt).toBeGreaterThan(first!.ts)
      expect(once.result.counts.orders).toBeGreaterThan(0)
      // Halted while it was down, back to active once it answered: right after that answer's verdicts.
      const moves = ofTag(once.events, "TradingStateChanged")
      expect(moves.map((e) => [e.transition.from, e.transition.to, e.transition.cause, e.transition.at])).toEqual([
        ["active", "halted", "system", first!.ts],
        ["halted", "active", "system", firstOrder.order.decidedAt]
      ])
      expect(moves[0]!.seq).toBe(first!.seq + 1)
      const answered = once.events.filter((e) => e.seq > moves[0]!.seq && e.seq < moves[1]!.seq)
      // Nothing executed while halted but the verdicts of the answer that showed the officer back.
      const placed = answered.filter((e) => e._tag === "VerdictGiven" || e._tag === "OrderPlaced")
      expect(placed.map((e) => e._tag)).toContain("OrderPlaced")
      expect(placed.every((e) => e.at === moves[1]!.at)).toBe(true)
      expect(once.result.tradingState).toBe("active")
      expect(once.result.status).toBe("completed")

      // Down at the end of the data (its last judgements): the run completes, the halt ending with it
      // (downHalts: settled) — back to the officer's state, which nothing moved meanwhile.
      const judges = new Set(ofTag(baseline.events, "DecisionMade").map((e) => e.decision.ts)).size
      const downLate = { risk: (message: unknown, received: number) => (message as { _tag: string })._tag === "Judge" && received >= judges }
      const late = yield* record({ strategy: strategy(), feed: market(300), faults: downLate })
      expect(late.result.status).toBe("completed")
      const settled = ofTag(late.events, "TradingStateChanged")
      expect(settled.map((e) => [e.transition.from, e.transition.to, e.transition.cause])).toEqual([["active", "halted", "system"], ["halted", "active", "system"]])
      expect(settled[1]!.transition.at).toBe(late.result.to)
      expect(late.result.tradingState).toBe("active")
      // Recorded before (downHalts: chained): the run completed halted, and re-executes so.
      const chained = yield* record({
        strategy: strategy(),
        feed: market(300),
        faults: downLate,
        recordedStart: { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "fills", analystProgress: "past_warm_up", downHalts: "chained" }
      })
      expect(ofTag(chained.events, "TradingStateChanged").map((e) => e.transition.to)).toEqual(["halted"])
      expect(chained.result.tradingState).toBe("halted")
    }))

  it.effect("approval policies: approve executes, reject drops, pause waits for the operator (or fails without one)", () =>
    Effect.gen(function*() {
      const withPolicy = (policy: string) => strategy({ risk: { approval: { shorts: true, policy } } })
      const approve = yield* record({ strategy: withPolicy("approve"), feed: market(300) })
      const requested = ofTag(approve.events, "ApprovalRequested")
      expect(requested.length).toBeGreaterThan(0)
      expect(ofTag(approve.events, "ApprovalResolved").every((e) => e.outcome === "approved" && e.by === "policy:approve")).toBe(true)
      const shortRounds = new Set(requested.map((e) => e.round))
      expect(ofTag(approve.events, "OrderPlaced").some((e) => shortRounds.has(e.order.round))).toBe(true)

      const reject = yield* record({ strategy: withPolicy("reject"), feed: market(300) })
      const rejectedRounds = new Set(ofTag(reject.events, "ApprovalRequested").map((e) => e.round))
      expect(rejectedRounds.size).toBeGreaterThan(0)
      expect(ofTag(reject.events, "OrderPlaced").some((e) => rejectedRounds.has(e.order.round))).toBe(false)

      const asked: Array<string> = []
      const pause = yield* record({
        strategy: withPolicy("pause"),
        feed: market(300),
        approver: (request) =>
          Effect.sync(() => {
            asked.push(request.round)
            return { approved: asked.length % 2 === 1, by: "alice", reason: "checked" }
          })
      })
      expect(asked.length).toBe(ofTag(pause.events, "ApprovalRequested").length)
      const resolved = ofTag(pause.events, "ApprovalResolved")
      expect(resolved.map((e) => e.by)).toEqual(asked.map(() => "alice"))
      const approvedRounds = new Set(resolved.filter((e) => e.outcome === "approved").map((e) => e.round))
      const placed = new Set(ofTag(pause.events, "OrderPlaced").map((e) => e.order.round))
      for (const round of approvedRounds) expect(placed.has(round)).toBe(true)
      for (const e of resolved.filter((e) => e.outcome === "rejected")) expect(placed.has(e.round)).toBe(false)

      // Without an operator the run fails, as any run does (test/swarm/Unattended.test.ts).
      const alone = yield* Backtest.run({ strategy: withPolicy("pause"), feed: market(300) })
      expect(alone.status).toBe("failed")
      expect(alone.failure).toMatch(/^risk\.approval\.policy: /)
    }))

  it.live("the intents a slice holds are put to the operator together, and resolved in the order they were requested", () =>
    Effect.gen(function*() {
      // Every opening order needs approval: on the first bar with opinions, each symbol's round holds one.
      const held = strategy({ allowShort: false, risk: { approval: { notionalPctAbove: 1, policy: "pause" } } })
      let inFlight = 0
      let most = 0
      const asked: Array<string> = []
      const { events } = yield* record({
        strategy: held,
        feed: market(120),
        // An operator who takes a while, answering the later request first.
        approver: (request) =>
          Effect.gen(function*() {
            asked.push(request.round)
            most = Math.max(most, ++inFlight)
            yield* Effect.sleep(`${60 - 10 * (inFlight - 1)} millis`)
            inFlight--
            return { approved: true, by: "alice", reason: "checked" }
          })
      })
      const requested = ofTag(events, "ApprovalRequested")
      const perSlice = new Map<number, number>()
      for (const e of requested) perSlice.set(e.at, (perSlice.get(e.at) ?? 0) + 1)
      // One after the other, each waited its own timeout: a third of the queue was visible at a time.
      expect(Math.max(...perSlice.values())).toBeGreaterThan(1)
      expect(most).toBe(Math.max(...perSlice.values()))
      expect(ofTag(events, "ApprovalResolved").map((e) => e.round)).toEqual(requested.map((e) => e.round))
    }))

  it.effect("same-close fills happen at the deciding bar's close", () =>
    Effect.gen(function*() {
      const { events } = yield* record({ strategy: strategy({ execution: { fillTiming: "same_close" } }), feed: market(200) })
      const closes = new Map<string, number>([...market(200)].flatMap((slice) => slice.bars.map((b) => [`${b.symbol}@${b.ts}`, b.close] as const)))
      const fills = ofTag(events, "OrderFilled")
      expect(fills.length).toBeGreaterThan(0)
      for (const { fill } of fills) {
        expect(fill.ts).toBe(Number(fill.orderId.split("@")[1]))
        expect(fill.marketPrice).toBe(closes.get(fill.orderId))
      }
    }))

  it.effect("same-close fills are in the equity curve of their bar: the metrics end at the books' equity", () =>
    Effect.gen(function*() {
      // A commission on every fill: each same-close fill moves equity at the bar it is marked at.
      const costly = strategy({ execution: { fillTiming: "same_close", commission: { _tag: "per_share", perShare: "0", minimum: "50" } } })
      const { result } = yield* record({ strategy: costly, feed: market(200) })
      expect(result.counts.fills).toBeGreaterThan(0)
      expect(result.metrics.finalEquity).toBe(result.portfolio.equity)
      expect(result.metrics.totalReturn).toBeCloseTo(result.portfolio.equity / result.metrics.initialCash - 1, 12)
      // The next-open run agrees with itself too (its fills come with the next bar's marks).
      const next = yield* record({ strategy: strategy({ execution: { commission: { _tag: "per_share", perShare: "0", minimum: "50" } } }), feed: market(200) })
      expect(next.result.metrics.finalEquity).toBe(next.result.portfolio.equity)
    }))

  it.effect("bad input is a typed error naming the field", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(Backtest.run({ strategy: strategy({ symbols: ["AAA", "ZZZ"] }), feed: market(50) }))
      expect(missing).toMatchObject({ _tag: "BacktestError", field: "symbols" })
      expect(missing.message).toBe("symbols: no data for ZZZ (the data has AAA, BBB, CCC)")
      // A feed cut to the strategy's symbols (as the CLI loads it) still says what the data has.
      const loaded = Feed.fromBars(new Map(symbols.map((s) => [s, [...market(5)].flatMap((slice) => slice.bars.filter((b) => b.symbol === s))])) as never, {
        fingerprint: "cut",
        symbols: ["AAA", "ZZZ"]
      })
      expect(Either.getLeft(Backtest.checkSymbols({ symbols: ["AAA", "ZZZ"] as never }, loaded)).pipe(Option.map((e) => e.reason)))
        .toEqual(Option.some("no data for ZZZ (the data has AAA, BBB, CCC)"))
      const windowed = Feed.fromBars(new Map([["AAA", [...market(5)].flatMap((slice) => slice.bars.filter((b) => b.symbol === "AAA"))]]) as never, {
        fingerprint: "window",
        from: 8.64e15
      })
      expect(Either.getLeft(Backtest.checkSymbols({ symbols: ["AAA"] as never }, windowed)).pipe(Option.map((e) => e.reason)))
        .toEqual(Option.some("no data for AAA in the period (the data has bars of them outside it)"))
      const unknown = yield* Effect.flip(Backtest.run({ strategy: strategy({ agents: [{ type: "nope" }] }), feed: market(50) }))
      expect(unknown).toMatchObject({ _tag: "InvalidAgent", field: "agents[0].type" })
      const params = yield* Effect.flip(Backtest.run({ strategy: strategy({ agents: [{ type: "sma_crossover", params: { fast: 50, slow: 5 } }] }), feed: market(50) }))
      expect(params).toMatchObject({ _tag: "InvalidAgent", field: "agents[0].params.fast" })
      const empty = Feed.fromBars(new Map() as never, { fingerprint: "empty" })
      const none = yield* Effect.flip(Backtest.run({ strategy: strategy({ symbols: ["AAA"] }), feed: { ...empty, symbols: ["AAA"] as never, [Symbol.iterator]: () => [][Symbol.iterator]() } }))
      expect(none).toMatchObject({ _tag: "BacktestError", field: "data" })
    }))

  it.effect("an analyst that fails on every message escalates, on bar time as on one-second bars: the run fails naming it and its error", () =>
    Effect.gen(function*() {
      const daily = market(300)
      const seconds = Feed.synthetic({ ...Synthetic.defaults, seed: 3, symbols: [...symbols] as never, bars: 2_000, intervalMs: 1_000, weekdaysOnly: false })
      for (const feed of [daily, seconds]) {
        const { events, result } = yield* record({ strategy: strategy(), feed, faults: { sma_crossover: () => true } })
        expect(result.status).toBe("failed")
        expect(result.failure).toMatch(/^the run's supervisor gave up at \d{4}-.*Z: /)
        expect(result.failure).toContain(
          "/user/run/analysts/sma_crossover kept failing (4 escalations of /user/run/analysts in a row without an opinion given): Error: injected fault: sma_crossover crashed on message 16"
        )
        const lifecycle = ofTag(events, "AgentLifecycle").map((e) => e.event)
        // 4 failures in a row escalate the analysts; their 4th escalation in a row ends the run.
        expect(lifecycle.filter((e) => e._tag === "ActorCrashed" && e.actor === "/user/run/analysts/sma_crossover")).toHaveLength(16)
        const escalations = lifecycle.filter((e) => e._tag === "SupervisorEscalated")
        expect(escalations.map((e) => [e.supervisor, e.child, e.restarts, e.limit, e.origin])).toEqual([
          ...Array.from({ length: 4 }, () => ["/user/run/analysts", "/user/run/analysts/sma_crossover", 4, "no_progress", undefined]),
          ["/user/run", "/user/run/analysts", 4, "no_progress", "/user/run/analysts/sma_crossover"]
        ])
        expect(result.counts.slices).toBeLessThan(30)
        // Its agents stopped, nothing trades: the state says so, in the events and the result alike.
        const changed = ofTag(events, "TradingStateChanged").at(-1)!
        expect(changed.transition).toMatchObject({ from: "active", to: "halted", cause: "system", reason: result.failure })
        expect(result.tradingState).toBe("halted")
        expect(events.at(-1)!._tag).toBe("RunFailed")
      }
    }))

  it.effect("an analyst that fails on every bar once warmed up is given up on: its warm-up after each restart is not progress, and the run fails naming it", () =>
    Effect.gen(function*() {
      // Sulky (./crashing.ts): after every restart it folds the 19 bars of its warm-up, answering
      // with none, then fails on the 20th.
      const registry = new Map([...analysts, ["sulky", sulky]])
      const sulking = strategy({ agents: [{ type: "sulky", params: { fast: 5, slow: 20 } }, { type: "ema_crossover", params: { fast: 5, slow: 20 } }] })
      const { events, result } = yield* record({ strategy: sulking, feed: market(500), registry })
      expect(ofTag(events, "RunStarted")[0]!.analystProgress).toBe("past_warm_up")
      expect(result.status).toBe("failed")
      expect(result.failure).toContain(
        "/user/run/analysts/sulky kept failing (4 escalations of /user/run/analysts in a row without an opinion given): Error: sulky: warmed up on AAA, and failing"
      )
      const lifecycle = ofTag(events, "AgentLifecycle").map((e) => e.event)
      // As for an analyst failing on every message: 4 failures in a row escalate the analysts, their 4th escalation ends the run.
      expect(lifecycle.filter((e) => e._tag === "ActorCrashed" && e.actor === "/user/run/analysts/sulky")).toHaveLength(16)
      expect(lifecycle.filter((e) => e._tag === "SupervisorEscalated").map((e) => [e.supervisor, e.limit, e.origin])).toEqual([
        ...Array.from({ length: 4 }, () => ["/user/run/analysts", "no_progress", undefined]),
        ["/user/run", "no_progress", "/user/run/analysts/sulky"]
      ])
      expect(result.counts.slices).toBeLessThan(500)
      expect(result.tradingState).toBe("halted")
      expect(events.at(-1)!._tag).toBe("RunFailed")

      // Recorded before (no analystProgress in its RunStarted): its warm-up was progress, it was
      // restarted for ever and the run completed; re-executed so, byte for byte.
      const before = yield* record({ strategy: sulking, feed: market(500), registry, recordedStart: {} })
      expect(ofTag(before.events, "RunStarted")[0]!).not.toHaveProperty("analystProgress")
      expect(before.result.status).toBe("completed")
      expect(before.result.counts.slices).toBe(500)
      expect(before.result.agentRestarts[0]!.crashes).toBeGreaterThan(16)
      const again = yield* record({ strategy: sulking, feed: market(500), registry, recordedStart: {} })
      expect(again.lines).toEqual(before.lines)
    }))

  it.effect("an analyst that fails now and then, giving opinions in between, is restarted every time and the run completes", () =>
    Effect.gen(function*() {
      // Fails on the 30th bar after each start: opinions on the 20th to the 29th, between failures.
      const sma: Model<any, any, any> = SmaCrossover.model
      let given = 0
      const moody: AnyModel = {
        ...sma,
        type: "moody",
        init: (config, random) => ({ sma: sma.init(config, random), bars: 0 }),
        update: (state, bar, config, allowShort) => {
          if (++state.bars === 30) throw new Error("moody: now and then")
          const signal = sma.update(state.sma, bar, config, allowShort)
          if (signal !== undefined) given++
          return signal
        }
      }
      const registry = new Map([...analysts, ["moody", moody]])
      const { events, result } = yield* record({
        strategy: strategy({ agents: [{ type: "moody", params: { fast: 5, slow: 20 } }, { type: "ema_crossover", params: { fast: 5, slow: 20 } }] }),
        feed: market(500),
        registry
      })
      expect(ofTag(events, "RunStarted")[0]!.analystProgress).toBe("past_warm_up")
      expect(result.status).toBe("completed")
      expect(given).toBeGreaterThan(0)
      const crashes = ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed" && e.event.actor.endsWith("/moody"))
      // As many failures as end the run of one failing on every bar once warmed up: none of them in a row.
      expect(crashes.length).toBeGreaterThanOrEqual(16)
      expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "SupervisorEscalated")).toEqual([])
    }))

  describe("an LLM analyst (its progress: a warm brief, a round thought about)", () => {
    // One symbol, so each message it handles is one round: its brief is warm from its 34th (warmUpOf).
    const oneSymbol = (bars: number) => Feed.synthetic({ ...Synthetic.defaults, seed: 7, symbols: ["AAA"] as never, bars })
    const thinking = strategy({ symbols: ["AAA"], agents: [{ type: "llm_analyst" }, { type: "ema_crossover", params: { fast: 5, slow: 20 } }] })
    const WARM = LlmAnalyst.warmUpOf({ bars: 20 })
    /**
     * Faults for `llm_analyst`: crash on the `nth` message after each (re)start — its state, the
     * briefs, starts again with it, so the `WARM`th is the first round it would think about.
     */
    const failingOn = (nth: number): Run.Faults => {
      let handled = 0
      return {
        llm_analyst: () => {
          if (++handled < nth) return false
          handled = 0
          return true
        }
      }
    }
    const crashesOf = (events: ReadonlyArray<RunEvent>) =>
      ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed" && e.event.actor === "/user/run/analysts/llm_analyst")

    it.effect("failing on every round once its brief is warm, it is given up on: the rounds of its warm-up are not progress, and the run fails naming it", () =>
      Effect.gen(function*() {
        expect(WARM).toBe(34)
        const { events, result } = yield* record({ strategy: thinking, feed: oneSymbol(WARM * 20), faults: failingOn(WARM) })
        expect(ofTag(events, "RunStarted")[0]!.analystProgress).toBe("past_warm_up")
        expect(result.status).toBe("failed")
        expect(result.failure).toContain("/user/run/analysts/llm_analyst kept failing (4 escalations of /user/run/analysts in a row without an opinion given)")
        // 4 failures in a row escalate the analysts, their 4th escalation ends the run.
        expect(crashesOf(events)).toHaveLength(16)
        expect(ofTag(events, "OpinionGiven").filter((e) => e.opinion.agent === "llm_analyst")).toEqual([])
        const lifecycle = ofTag(events, "AgentLifecycle").map((e) => e.event)
        expect(lifecycle.filter((e) => e._tag === "SupervisorEscalated").map((e) => [e.supervisor, e.limit])).toEqual([
          ...Array.from({ length: 4 }, () => ["/user/run/analysts", "no_progress"]),
          ["/user/run", "no_progress"]
        ])
        expect(result.counts.slices).toBeLessThan(WARM * 20)
        expect(events.at(-1)!._tag).toBe("RunFailed")

        // Recorded before (no analystProgress): every message handled was progress, it was
        // restarted for ever and the run completed; re-executed so.
        const before = yield* record({ strategy: thinking, feed: oneSymbol(WARM * 20), faults: failingOn(WARM), recordedStart: {} })
        expect(before.result.status).toBe("completed")
        expect(crashesOf(before.events).length).toBeGreaterThan(16)
      }))

    it.effect("failing now and then, with rounds thought about in between, it is restarted every time and the run completes", () =>
      Effect.gen(function*() {
        // Fails on the 38th message after each start: rounds 34 to 37 thought about, between failures
        // (the last a few bars before the end, so that it is restarted too).
        const { events, result } = yield* record({ strategy: thinking, feed: oneSymbol((WARM + 4) * 18 + 10), faults: failingOn(WARM + 4) })
        expect(result.status).toBe("completed")
        expect(ofTag(events, "OpinionGiven").filter((e) => e.opinion.agent === "llm_analyst").length).toBeGreaterThan(0)
        // As many failures as end the run of one failing on every round once warm: none of them in a row.
        expect(crashesOf(events).length).toBeGreaterThanOrEqual(16)
        expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorRestarted" && e.event.actor === "/user/run/analysts/llm_analyst"))
          .toHaveLength(crashesOf(events).length)
        expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "SupervisorEscalated")).toEqual([])
      }))
  })

  it.effect("a spine agent that fails on every message ends the run failed on daily bars, not completed with no rounds", () =>
    Effect.gen(function*() {
      for (const agent of ["coordinator", "ledger", "desk"]) {
        const { result } = yield* record({ strategy: strategy(), feed: market(300), faults: { [agent]: () => true } })
        expect(result.status).toBe("failed")
        expect(result.failure).toContain(`/user/run/${agent} kept failing (4 failures of /user/run/${agent} in a row without a message handled): Error: injected fault: ${agent} crashed on message`)
        expect(result.tradingState).toBe("halted")
        expect(result.counts.slices).toBeLessThan(10)
      }
    }))

  it.effect("an agent that keeps crashing past its supervisor's intensity ends the run as failed, and the run says why", () =>
    Effect.gen(function*() {
      // One bar a second: the coordinator crashes on every one, more than 10 restarts in a minute.
      const fast = Feed.synthetic({ ...Synthetic.defaults, seed: 3, symbols: [...symbols] as never, bars: 300, intervalMs: 1_000, weekdaysOnly: false })
      const { events, result } = yield* record({ strategy: strategy(), feed: fast, faults: { coordinator: () => true } })
      expect(result.status).toBe("failed")
      expect(result.failure).toMatch(/supervisor gave up/)
      expect(result.counts.orders).toBe(0)
      const last = events.at(-1)!
      expect(last._tag).toBe("RunFailed")
      expect(ofTag(events, "AgentLifecycle").some((e) => e.event._tag === "SupervisorEscalated")).toBe(true)
      expect(result.counts.slices).toBeLessThan(300)
    }))

  it.effect("an analyst whose explain throws trades as if it had not, whatever the events' detail: nobody crashes, the rationale says why", () =>
    Effect.gen(function*() {
      // SMA crossover, but its rationale of every short cannot be written.
      const sma: Model<any, any, any> = SmaCrossover.model
      const mute: AnyModel = {
        ...sma,
        type: "mute",
        explain: (signal, config, allowShort) => {
          if (signal.direction === "short") throw new Error("no words for a short")
          return sma.explain(signal, config, allowShort)
        }
      }
      const registry = new Map([...analysts, ["mute", mute]])
      const trading = (events: ReadonlyArray<RunEvent>) =>
        (["OrderPlaced", "OrderFilled", "TradeClosed"] as const).map((tag) => ofTag(events, tag).map((e) => JSON.stringify({ ...e, seq: 0 }).replaceAll(e.run, "run")))
      const agents = (type: string) => [{ type, params: { fast: 5, slow: 20 } }, { type: "ema_crossover", params: { fast: 5, slow: 20 } }]
      const plain = yield* record({ strategy: strategy({ agents: agents("sma_crossover") }), feed: market(200) })
      for (const detail of ["decisions", "rounds"] as const) {
        const { events, result } = yield* record({ strategy: strategy({ agents: agents("mute") }), feed: market(200), registry, events: detail })
        expect(result.status).toBe("completed")
        expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag !== "ActorStarted")).toEqual([])
        expect(ofTag(events, "DeadLetterRecorded")).toEqual([])
        expect(result.counts.restarts).toBe(0)
        // The same trading as the analyst whose words never fail.
        expect(result.counts.fills).toBe(plain.result.counts.fills)
        expect(result.metrics.finalEquity).toBe(plain.result.metrics.finalEquity)
        expect(trading(events)).toEqual(trading(plain.events))
        // Its shorts' rationales are recorded, saying whose words failed and why.
        const shorts = ofTag(events, "OpinionGiven").map((e) => e.opinion).filter((o) => o.agent === "mute" && o.direction === "short")
        expect(shorts.length).toBeGreaterThan(0)
        for (const opinion of shorts) expect(opinion.rationale).toBe("explain failed: mute: Error: no words for a short")
      }
    }))

  it.effect("a run its supervisor gave up on reports the books as they last stood, as its events say, not the starting cash", () =>
    Effect.gen(function*() {
      const files = ["data/ACME.csv", "data/GLOBEX.csv", "data/INITECH.csv"]
      const sample = strategy({
        symbols: ["ACME", "GLOBEX", "INITECH"],
        agents: [{ type: "crashy", params: { fast: 5, slow: 20 } }, { type: "sma_crossover", params: { fast: 10, slow: 50 } }]
      })
      // Throws on every bar after `limit` (three symbols a timestamp), counted across restarts.
      let seen = 0
      let limit = 0
      const sma: Model<any, any, any> = SmaCrossover.model
      const crashy: AnyModel = {
        ...sma,
        type: "crashy",
        update: (state, bar, config, allowShort) => {
          if (++seen > limit) throw new Error(`crashy: bar ${seen}`)
          return sma.update(state, bar, config, allowShort)
        }
      }
      const registry = new Map([...analysts, ["crashy", crashy]])
      // An analyst, the coordinator, and the ledger itself (its books: those after the last message it handled).
      const from = (n: number) => (_: unknown, received: number) => received > n
      for (const [crashyFrom, faults] of [[3 * 300, {}], [Infinity, { coordinator: from(300) }], [Infinity, { ledger: from(400) }]] as const) {
        seen = 0
        limit = crashyFrom
        const feed = yield* Feed.load(files).pipe(Effect.orDie)
        const { events, result } = yield* record({ strategy: sample, feed, registry, faults })
        expect(result.status).toBe("failed")
        expect(result.failure).toMatch(/supervisor gave up/)
        const closed = ofTag(events, "TradeClosed").map((e) => e.trade)
        expect(closed.length).toBeGreaterThan(5)
        expect(result.counts.fills).toBe(ofTag(events, "OrderFilled").length)
        // The report is the books the events describe: every trade closed, the cash after the last fill.
        expect(result.trades).toEqual(closed)
        expect(result.metrics.tradeCount).toBe(closed.length)
        const last = ofTag(events, "PortfolioUpdated").at(-1)!.snapshot
        const p = result.portfolio
        expect(p.cash).toBe(last.cash)
        expect(p.realizedPnl).toBe(last.realizedPnl)
        expect(p.cash + p.positions.reduce((s, x) => s + x.marketValue, 0)).toBe(p.equity)
        expect(result.metrics.finalEquity).toBe(p.equity)
        expect(p.equity).not.toBe(sample.initialCash)
      }
    }))
})

describe("a rejected intent", () => {
  /** Long on AAA for its first 10 bars then flat; long on BBB and CCC throughout. */
  const slots: Model<{}, { bars: number }, {}> = {
    type: "test_slots",
    description: "test: AAA long for 10 bars then flat, the others long",
    config: Schema.Struct({}),
    horizon: () => 1,
    init: () => ({ bars: 0 }),
    update: (state, bar) => ({ direction: bar.symbol === "AAA" && state.bars++ >= 10 ? "flat" : "long", confidence: 1, features: {} }),
    explain: ({ direction }) => direction
  }
  const registry = new Map<string, AnyModel>([...analysts, [slots.type, slots as AnyModel]])
  const oneSlot = (risk: Record<string, unknown> = {}) =>
    strategy({
      agents: [{ type: "test_slots" }],
      allowShort: false,
      execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } },
      rules: [{ id: "one", name: "One position", kind: "max_open_positions", priority: 1, params: { count: 1 } }],
      risk
    })

  it.effect("by a rule is judged again while the consensus stays, and goes through once the rule lets it", () =>
    Effect.gen(function*() {
      const { events, result } = yield* record({ strategy: oneSlot(), feed: market(30), registry })
      expect(result.status).toBe("completed")
      const orders = ofTag(events, "OrderPlaced").map((e) => `${e.order.symbol} ${e.order.side}`)
      // AAA takes the one slot; when it goes flat (its 11th bar), BBB — long all along — takes it.
      expect(orders.slice(0, 3)).toEqual(["AAA buy", "AAA sell", "BBB buy"])
      const bbb = ofTag(events, "VerdictGiven").filter((e) => e.verdict.intent.symbol === "BBB")
      // Refused on each of AAA's ten bars (the rule named), then approved.
      expect(bbb.slice(0, 10).every((e) => e.verdict.outcome === "rejected" && e.verdict.reasons.join(" ").includes("One position"))).toBe(true)
      expect(bbb[10]!.verdict.outcome).toBe("approved")
      expect(bbb).toHaveLength(11)
      // CCC stays refused to the end (BBB keeps the slot), judged on every bar, never placed.
      const ccc = ofTag(events, "VerdictGiven").filter((e) => e.verdict.intent.symbol === "CCC")
      expect(ccc.length).toBe(30)
      expect(ccc.every((e) => e.verdict.outcome === "rejected")).toBe(true)
    }))

  it.effect("orders decided on the last bar are cancelled when the data ends, not left pending", () =>
    Effect.gen(function*() {
      // AAA goes flat on its 11th bar, the last: its sell has no next open to fill at.
      const { events, result } = yield* record({ strategy: oneSlot(), feed: market(11), registry })
      expect(result.status).toBe("completed")
      const placed = ofTag(events, "OrderPlaced").map((e) => e.order.id)
      const filled = new Set(ofTag(events, "OrderFilled").map((e) => e.fill.orderId))
      const cancelled = ofTag(events, "OrderCancelled")
      expect(cancelled.map((e) => e.order)).toContain(placed.find((id) => id.startsWith("AAA@") && !filled.has(id)))
      // Every order placed is filled or cancelled; the cancellations come last, saying why.
      expect(placed.every((id) => filled.has(id) || cancelled.some((e) => e.order === id))).toBe(true)
      const end = new Date(result.to).toISOString()
      for (const e of cancelled) expect(e.reason).toBe(`the data ended (${end}) before a bar of ${e.symbol} to fill it at`)
      expect(events.slice(-1 - cancelled.length).map((e) => e._tag)).toEqual([...cancelled.map(() => "OrderCancelled"), "RunCompleted"])
    }))

  it.effect("by the operator's answer (the `reject` policy) holds until the consensus changes", () =>
    Effect.gen(function*() {
      const { events } = yield* record({ strategy: oneSlot({ approval: { notionalPctAbove: 5, policy: "reject" } }), feed: market(30), registry })
      expect(ofTag(events, "OrderPlaced")).toEqual([])
      // Each symbol's long is put to the approval once (the rule passes: nothing is open), and once
      // refused it is not asked again in 30 bars; AAA's going flat is no order (nothing is held).
      const asked = ofTag(events, "ApprovalRequested").map((e) => e.intent.symbol)
      expect(asked).toEqual(["AAA", "BBB", "CCC"])
      expect(ofTag(events, "ApprovalResolved").every((e) => e.outcome === "rejected")).toBe(true)
    }))
})

describe("orders still waiting for their symbol's bar", () => {
  const day = (d: number) => Date.UTC(2024, 0, d)
  /** Daily bars of `symbol` from (day, open, close) triples: high and low the extremes, volume 1000. */
  const series = (symbol: string, days: ReadonlyArray<readonly [number, number, number]>) =>
    days.map(([d, open, close]) => ({ symbol, ts: day(d), open, high: Math.max(open, close), low: Math.min(open, close), close, volume: 1_000 }))
  const rising: ReadonlyArray<readonly [number, number, number]> = [[1, 99, 99], [2, 100, 100], [3, 100, 101], [4, 101, 102], [5, 102, 103]]
  /** GB has no bar on the 3rd: its order of the 2nd waits a day for an open to fill at. */
  const gapped = (): Feed.Feed =>
    Feed.fromBars(new Map([
      ["GA", series("GA", rising)],
      ["GB", series("GB", rising.filter(([d]) => d !== 3).map(([d, o, c]) => [d, d >= 4 ? o - 1 : o, d >= 4 ? c - 1 : c] as const))],
      ["GC", series("GC", [[1, 100, 100], [2, 100, 100], [3, 100, 101], [4, 101, 102], [5, 102, 103]])]
    ]) as never, { fingerprint: "gapped" })
  const gappedStrategy = (sizingPct: number, rules: ReadonlyArray<unknown> = []) =>
    Schema.decodeUnknownSync(Strategy)({
      name: "gapped",
      symbols: ["GA", "GB", "GC"],
      initialCash: "100000",
      // Long while the close rises, flat otherwise.
      agents: [{ type: "sma_crossover", params: { fast: 1, slow: 2 } }],
      sizing: { mode: "percent_of_equity", value: sizingPct },
      execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } },
      rules
    })

  it.effect("count against the cash reserve: the next intent is judged as if they had filled", () =>
    Effect.gen(function*() {
      const { events, result } = yield* record({ strategy: gappedStrategy(45), feed: gapped() })
      expect(result.status).toBe("completed")
      // GA and GB bought on the 2nd (the reserve after both exactly 10 %); GB's order waits over the 3rd.
      const gc = ofTag(events, "VerdictGiven").find((e) => e.verdict.intent.symbol === "GC")!
      expect(gc.verdict.outcome).toBe("rejected")
      expect(gc.verdict.gates.find((g) => g.gate === "min_cash_reserve")).toMatchObject({ result: "reject" })
      // Cash never goes below zero, and exposure never past equity.
      for (const e of ofTag(events, "PortfolioUpdated")) {
        expect(e.snapshot.cash, new Date(e.snapshot.ts).toISOString()).toBeGreaterThanOrEqual(0)
        expect(e.snapshot.grossExposure).toBeLessThanOrEqual(e.snapshot.equity)
      }
    }))

  it.effect("and a buy whose open gapped past the reserve fills only as far as the cash pays: cash never goes below zero", () =>
    Effect.gen(function*() {
      // Both bought on the 2nd with the reserve after them exactly 10 %; both open 30 % higher on the 3rd.
      const jump: ReadonlyArray<readonly [number, number, number]> = [[1, 99, 99], [2, 100, 100], [3, 130, 130], [4, 130, 131]]
      const feed = Feed.fromBars(new Map([["GA", series("GA", jump)], ["GB", series("GB", jump)]]) as never, { fingerprint: "jump" })
      const strategy = Schema.decodeUnknownSync(Strategy)({ ...Schema.encodeSync(Strategy)(gappedStrategy(45)), symbols: ["GA", "GB"] })
      const { events, result } = yield* record({ strategy, feed })
      expect(result.status).toBe("completed")
      const fills = ofTag(events, "OrderFilled").map((e) => e.fill)
      expect(fills.map((f) => [f.symbol, f.quantity, f.price])).toEqual([["GA", 450, 130], ["GB", 319, 130]])
      expect(fills[1]!.reduced).toMatch(/^cut from 450 to 319: 58,500(\.00)? needed at 130, 41,500(\.00)? at hand/)
      for (const e of ofTag(events, "PortfolioUpdated")) expect(e.snapshot.cash).toBeGreaterThanOrEqual(0)
    }))

  it.effect("count against the open-position rule", () =>
    Effect.gen(function*() {
      const two = { id: "two", name: "At most two", kind: "max_open_positions", params: { count: 2 } }
      const { events } = yield* record({ strategy: gappedStrategy(10, [two]), feed: gapped() })
      const gc = ofTag(events, "VerdictGiven").find((e) => e.verdict.intent.symbol === "GC")!
      expect(gc.verdict.outcome).toBe("rejected")
      expect(gc.verdict.rules.find((r) => r.rule === "two")).toMatchObject({ result: "reject" })
      const last = ofTag(events, "PortfolioUpdated").at(-1)!
      expect(last.snapshot.positions.filter((p) => p.quantity !== 0).length).toBeLessThanOrEqual(2)
    }))
})

describe("amounts near the end of the exact money range (about 9 billion)", () => {

  /** Daily bars of one symbol from 2024-01-01, each `[open, close]` (high and low the two of them). */
  const series = (symbol: string, prices: ReadonlyArray<readonly [number, number]>): Array<Bar> =>
    prices.map(([open, close], i) => ({
      symbol: symbol as Bar["symbol"],
      ts: (Date.UTC(2024, 0, 1) + i * 86_400_000) as Bar["ts"],
      open,
      high: Math.max(open, close),
      low: Math.min(open, close),
      close,
      volume: 1_000
    }))
  const feedOf = (...all: ReadonlyArray<ReadonlyArray<Bar>>) =>
    Feed.fromBars(new Map(all.map((bars) => [bars[0]!.symbol, bars])), { fingerprint: "test:money-range" })
  /** Closes from 10 up by a quarter a bar; each bar opens at the close before it. */
  const growing = (bars: number) => Array.from({ length: bars }, (_, i) => 10 * 1.25 ** i).map((close, i, all) => [i === 0 ? close : all[i - 1]!, close] as const)

  const rich = (overrides: Record<string, unknown> = {}) =>
    strategy({
      symbols: ["AAA"],
      initialCash: "1000000000",
      allowShort: false,
      agents: [{ type: "test_script" }],
      sizing: { mode: "percent_of_equity", value: 40 },
      execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } },
      ...overrides
    })

  it.effect("books that leave the range end the run failed, saying why, with the books as they last stood (no crash loop)", () =>
    Effect.gen(function*() {
      // The most a strategy may start with, 40 % of it long from 10: past 210 the equity leaves the range.
      const { events, result } = yield* record({ strategy: rich(), feed: feedOf(series("AAA", growing(20))), registry: registryOf({ AAA: ["long"] }) })
      expect(result.status).toBe("failed")
      expect(result.failure).toMatch(/^the books left the exact money range \(at most 9,007,199,254\.74\) at 2024-01-15T00:00:00\.000Z \(an amount of 9,\d{3},\d{3},\d{3}/)
      expect(result.counts.restarts).toBe(0)
      expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed")).toEqual([])
      expect(events.at(-1)).toMatchObject({ _tag: "RunFailed", reason: result.failure })
      // The report is the ledger's books before the timestamp it could not hold: whole, and exact.
      const portfolio = result.portfolio
      expect(portfolio.equity).toBe(portfolio.cash + portfolio.positions.reduce((sum, p) => sum + p.marketValue, 0))
      expect(Number.isSafeInteger(portfolio.equity)).toBe(true)
      expect(result.counts).toMatchObject({ slices: 15, orders: 1, fills: 1 })
      expect(portfolio.positions).toMatchObject([{ symbol: "AAA", quantity: 40_000_000 }])
      // A tenth of the cash has the headroom to run to the end.
      const tenth = yield* record({ strategy: rich({ initialCash: "100000000" }), feed: feedOf(series("AAA", growing(20))), registry: registryOf({ AAA: ["long"] }) })
      expect(tenth.result.status).toBe("completed")
    }))

  it.effect("a fill on the bar whose marks leave the range is in the books of the report: every fill reported is booked", () =>
    Effect.gen(function*() {
      // Bought at 10 on the second bar's open, which closes at 300: 40 million × 300 is past the range.
      const feed = feedOf(series("AAA", [[10, 10], [10, 300], [300, 300], [300, 300]]))
      const { events, result } = yield* record({ strategy: rich(), feed, registry: registryOf({ AAA: ["long"] }) })
      expect(result.status).toBe("failed")
      expect(result.failure).toBe(
        "the books left the exact money range (at most 9,007,199,254.74) at 2024-01-02T00:00:00.000Z (an amount of 12,000,000,000)"
      )
      expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed")).toEqual([])
      // The fill the desk reported is booked, marked at the last close the books could hold (10).
      expect(result.counts).toMatchObject({ orders: 1, fills: 1, restarts: 0 })
      expect(ofTag(events, "OrderFilled")).toHaveLength(1)
      expect(ofTag(events, "PortfolioUpdated").map((e) => e.snapshot.positions)).toEqual([[expect.objectContaining({ symbol: "AAA", quantity: 40_000_000 })]])
      const p = result.portfolio
      expect(p.positions).toMatchObject([{ symbol: "AAA", quantity: 40_000_000, markPrice: 10, marketValue: 400_000_000_000_000 }])
      expect([p.cash, p.equity]).toEqual([600_000_000_000_000, 1_000_000_000_000_000])
      expect(result.metrics.finalEquity).toBe(p.equity)
    }))

  it.effect("a fill the books cannot hold (it filled at a gap past its reference price) stops the run naming it, not a crashed ledger", () =>
    Effect.gen(function*() {
      // Long 40 % from 10 to about 182, then flat: the sale passed every gate at 182, and fills at a
      // gap open of 220, whose proceeds (8.8 billion) cash (0.6 billion) cannot hold.
      const prices = growing(14)
      const last = prices.at(-1)![1]
      const feed = feedOf(series("AAA", [...prices, [last, last], [220, 220], [220, 220]]))
      const registry = registryOf({ AAA: [...Array.from({ length: 14 }, () => "long" as const), "flat"] })
      const { events, result } = yield* record({ strategy: rich(), feed, registry })
      expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed")).toEqual([])
      expect(result.status).toBe("failed")
      const sold = ofTag(events, "OrderFilled").map((e) => e.fill).find((fill) => fill.side === "sell")!
      expect(result.failure).toBe(
        `the fill ${sold.id} (sell 40000000 AAA at 220) could not be booked at 2024-01-16T00:00:00.000Z: ` +
          "cash would leave the exact money range (±2^53−1 micros)"
      )
      expect(events.at(-1)).toMatchObject({ _tag: "RunFailed", reason: result.failure })
      expect(result.counts.restarts).toBe(0)
      // The books are those before that fill, whole and exact, at the last marks they could hold.
      const p = result.portfolio
      expect(p.positions).toMatchObject([{ symbol: "AAA", quantity: 40_000_000, markPrice: last }])
      expect(p.equity).toBe(p.cash + p.positions.reduce((sum, x) => sum + x.marketValue, 0))
    }))

  it.effect("a sale whose proceeds would take cash past the range is cut down by the money_range gate, not a crashed risk officer", () =>
    Effect.gen(function*() {
      // Long 40 % from 10 up to about 182 (equity 7.9 billion, cash 0.6 billion), then short: the
      // reversal sells 57 million at 182, 10.4 billion, which cash cannot hold.
      const prices = growing(14)
      const last = prices.at(-1)![1]
      const feed = feedOf(series("AAA", [...prices, ...Array.from({ length: 6 }, () => [last, last] as const)]))
      const registry = registryOf({ AAA: [...Array.from({ length: 14 }, () => "long" as const), "short"] })
      const { events, result } = yield* record({ strategy: rich({ allowShort: true }), feed, registry })
      expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed")).toEqual([])
      expect(ofTag(events, "DeadLetterRecorded")).toEqual([])
      expect(result.status).toBe("completed")
      const reversal = ofTag(events, "VerdictGiven").map((e) => e.verdict).find((v) => v.intent.side === "sell")!
      expect(reversal).toMatchObject({ outcome: "reduced", intent: { reason: "reverse" } })
      expect(reversal.gates.at(-1)).toMatchObject({ gate: "money_range", result: "reduce" })
      expect(reversal.reasons).toEqual([
        expect.stringMatching(
          /^gate money_range: its proceeds of 10426340486\.\d+ would take cash from 600000000 to 11026340486\.\d+, past the most the books hold exactly \(9007199254\.740991\); reduced from 57319413 to 46219066$/
        )
      ])
      // What passed filled and was booked: cash at the edge of the range, a short of the rest.
      expect(result.counts).toMatchObject({ orders: 2, fills: 2, restarts: 0 })
      const p = result.portfolio
      expect(p.cash).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER)
      expect(p.positions).toMatchObject([{ symbol: "AAA", quantity: 40_000_000 - reversal.quantity }])
      expect(p.equity).toBe(p.cash + p.positions.reduce((sum, x) => sum + x.marketValue, 0))
    }))

  it.effect("a fixed quantity of billions is judged and cut down by the gates, not a risk officer crashing on every bar", () =>
    Effect.gen(function*() {
      const huge = strategy({ symbols: ["AAA"], sizing: { mode: "fixed_quantity", value: 9_000_000_000 } })
      const { events, result } = yield* record({ strategy: huge, feed: market(120) })
      expect(ofTag(events, "AgentLifecycle").filter((e) => e.event._tag === "ActorCrashed")).toEqual([])
      expect(result).toMatchObject({ status: "completed", counts: { restarts: 0 } })
      expect(result.counts.orders).toBeGreaterThan(0)
      const verdicts = ofTag(events, "VerdictGiven").map((e) => e.verdict)
      expect(verdicts.length).toBeGreaterThan(0)
      for (const v of verdicts) expect(v.reasons.join("; ")).toMatch(/gate max_position: position would be \d+(\.\d+)?% of equity/)
      expect(result.counts.fills).toBe(result.counts.orders - ofTag(events, "OrderCancelled").length)
    }))
})

describe("a reduced intent", () => {
  /** The checksum this run had before reduced intents were worked (Swarm at d34879c). */
  const BEFORE_WORKING = "ebcb73213fac124049ac724e6192c88983f89ffcbf7973ff52994d339d739a65"
  /** Daily bars of AAA from 2024-01-01, each `[open, close]`. */
  const feedOf = (prices: ReadonlyArray<readonly [number, number]>) =>
    Feed.fromBars(new Map([["AAA", prices.map(([open, close], i) => ({
      symbol: "AAA" as Bar["symbol"],
      ts: (Date.UTC(2024, 0, 1) + i * 86_400_000) as Bar["ts"],
      open,
      high: Math.max(open, close),
      low: Math.min(open, close),
      close,
      volume: 1_000
    }))]]) as never, { fingerprint: "test:reduced" })
  /** 100 bought at 100 (within the cap); sold at 300, where the cap is 40 a sell. */
  const riseThenFlat = () =>
    ({
      strategy: strategy({
        symbols: ["AAA"],
        allowShort: false,
        agents: [{ type: "test_script" }],
        sizing: { mode: "fixed_quantity", value: 100 },
        execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } },
        rules: [{ id: "cap", name: "12k orders", kind: "max_order_notional", params: { notional: "12000", exemptRiskReducing: false } }]
      }),
      feed: feedOf([[100, 100], [100, 100], [100, 300], [300, 300], [300, 300], [300, 300], [300, 300], [300, 300], [300, 300], [300, 300]]),
      // Long on the first two bars, flat from the 4th on (the 3rd says nothing new: hold).
      registry: registryOf({ AAA: ["long", "long", "long", "flat"] })
    }) as const

  it.effect("by a notional cap: a flat decision sells the whole position in slices, bar after bar, and the round trip is one trade", () =>
    Effect.gen(function*() {
      const { events, result } = yield* record(riseThenFlat())
      expect(result.status).toBe("completed")
      expect(ofTag(events, "RunStarted")[0]!.reducedIntents).toBe("worked")
      const day = (d: number) => Date.UTC(2024, 0, d)
      // Flat decided on the 4th: 40 (the cap at 300), then on each next bar what is left, judged again.
      const orders = ofTag(events, "OrderPlaced").map((e) => [e.order.side, e.order.quantity, e.order.decidedAt])
      expect(orders).toEqual([["buy", 100, day(1)], ["sell", 40, day(4)], ["sell", 40, day(5)], ["sell", 20, day(6)]])
      const sells = ofTag(events, "VerdictGiven").map((e) => e.verdict).filter((v) => v.intent.side === "sell")
      expect(sells.map((v) => [v.outcome, v.intent.quantity, v.quantity])).toEqual([["reduced", 100, 40], ["reduced", 60, 40], ["approved", 20, 20]])
      // The remainders say whose target they work toward; the decision was made once.
      expect(sells.map((v) => v.intent.remainderOf)).toEqual([undefined, `AAA@${day(4)}`, `AAA@${day(4)}`])
      expect(sells.map((v) => v.intent.targetQuantity)).toEqual([0, 0, 0])
      expect(ofTag(events, "DecisionMade").map((e) => e.decision.action)).toEqual(["long", "flat"])
      // Flat, and no order once it is: one trade, from the buy to the last sell, its P&L all of it.
      expect(result.portfolio.positions.find((p) => p.symbol === "AAA")!.quantity).toBe(0)
      expect(ofTag(events, "VerdictGiven")).toHaveLength(4)
      expect(result.metrics.tradeCount).toBe(1)
      expect(result.trades).toMatchObject([{ side: "long", quantity: 100, entryTs: day(2), exitTs: day(7), entryPrice: 100, exitPrice: 300 }])
      expect(result.trades[0]!.pnl).toBe(result.portfolio.realizedPnl)
      expect(result.portfolio.realizedPnl).toBe(20_000 * 1_000_000)
    }))

  it.effect("by a notional cap on a buy: the target is bought in slices; a consensus that changes stops the work", () =>
    Effect.gen(function*() {
      const base = riseThenFlat()
      // 100 at 300 is 30,000: 40 a bar. Flat on the 3rd bar of the long, with 80 bought.
      const feed = feedOf(Array.from({ length: 8 }, () => [300, 300] as const))
      const { events } = yield* record({ ...base, feed, registry: registryOf({ AAA: ["long", "long", "flat", "flat", "long"] }) })
      const orders = ofTag(events, "OrderPlaced").map((e) => `${e.order.side} ${e.order.quantity}`)
      // Long: 40, 40; flat: the 80 sold 40 and 40 — the 20 of the long never bought; long again: 40, 40, 20.
      expect(orders).toEqual(["buy 40", "buy 40", "sell 40", "sell 40", "buy 40", "buy 40", "buy 20"])
    }))

  it.effect("recorded before reduced intents were worked (RunStarted says nothing of them): re-executed as it was recorded", () =>
    Effect.gen(function*() {
      const { events, result } = yield* record({ ...riseThenFlat(), recordedStart: {} })
      expect(result.status).toBe("completed")
      expect("reducedIntents" in ofTag(events, "RunStarted")[0]!).toBe(false)
      // One sell, cut to 40; the 60 left are held to the end.
      expect(ofTag(events, "OrderPlaced").map((e) => `${e.order.side} ${e.order.quantity}`)).toEqual(["buy 100", "sell 40"])
      expect(result.portfolio.positions.find((p) => p.symbol === "AAA")!.quantity).toBe(60)
      // The events of the code before the change, byte for byte.
      expect(result.checksum).toBe(BEFORE_WORKING)
    }))
})
