/**
 * Traces of runs, read back from an in-memory span exporter under the telemetry layer: one traced
 * round is one trace whose root is the coordinator's span — analysts (an LLM analyst's model call
 * with its GenAI attributes), the aggregation, the risk officer's verdict with every rule and gate,
 * the desk and the ledger beneath it; tracing changes nothing a run records; an untraced backtest
 * makes no span at all; sampling is one cycle in n; an approval's wait is a span of its round; the
 * in-process store is bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { SpanStatusCode } from "@opentelemetry/api"
import { Effect, Schema } from "effect"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Ollama from "../../src/llm/Ollama.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"
import * as TraceTree from "../../src/telemetry/TraceTree.js"
import * as FakeOllama from "../llm/FakeOllama.js"

const BARS = 60
const market = (symbols: ReadonlyArray<string>, bars = BARS) =>
  Feed.synthetic({ ...Synthetic.defaults, seed: 7, symbols: [...symbols] as never, bars })

const strategy = (overrides: Record<string, unknown> = {}) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "traced",
    symbols: ["AAA"],
    initialCash: "100000",
    allowShort: true,
    agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }, { type: "ema_crossover", params: { fast: 3, slow: 8 } }],
    sizing: { mode: "percent_of_equity", value: 10 },
    rules: [{ id: "two", name: "At most two positions", kind: "max_open_positions", priority: 1, params: { count: 2 } }],
    ...overrides
  })

/** Run `effect` under the telemetry layer with an in-memory exporter; the spans are read before the layer closes (O-1). */
const traced = <A, E>(effect: Effect.Effect<A, E>, options: Telemetry.Options = {}) =>
  Effect.gen(function*() {
    const exporter = new InMemorySpanExporter()
    return yield* Effect.gen(function*() {
      const value = yield* effect
      const telemetry = yield* Telemetry.Telemetry
      return { value, spans: [...exporter.getFinishedSpans()], telemetry }
    }).pipe(Effect.provide(Telemetry.make({ ...options, spanProcessors: [new SimpleSpanProcessor(exporter)] })))
  })

// O-2: OTel SDK 2.x has `parentSpanContext`, not `parentSpanId`.
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId
const actorOf = (span: ReadableSpan) => span.attributes["actor.name"]

describe("round traces", () => {
  it.scopedLive("one round is one trace: coordinator, analysts (an LLM's model call too), aggregation, verdict, desk and ledger", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({
        content: JSON.stringify({ direction: "long", confidence: 0.9, rationale: "up" }),
        tokensIn: 120,
        tokensOut: 15
      }))
      const s = strategy({
        agents: [
          { type: "sma_crossover", params: { fast: 3, slow: 8 } },
          { type: "ema_crossover", params: { fast: 3, slow: 8 } },
          { type: "llm_analyst", params: { model: "qwen2.5:7b" } }
        ],
        llm: { cacheTtlSeconds: 0, retries: 0 }
      })
      const { spans, telemetry, value: result } = yield* traced(
        Backtest.run({ strategy: s, feed: market(["AAA"]), traceRounds: 1, llm: { model: Ollama.make({ host: fake.url }) } })
      )
      expect(result.status).toBe("completed")
      const roots = spans.filter((span) => span.name === "Coordinator.round")
      // Every cycle traced: one root per slice, each its own trace.
      expect(roots).toHaveLength(result.counts.slices)
      expect(new Set(roots.map((r) => r.spanContext().traceId)).size).toBe(roots.length)
      expect(roots.every((r) => parentOf(r) === undefined && r.attributes["swarm.run"] === result.runId)).toBe(true)

      // A round the LLM analyst answered in, whose decision went to the risk officer and became an order.
      const withVerdict = spans.filter((span) => span.name === "Risk.verdict" && span.attributes["risk.outcome"] === "approved")
      const traceId = withVerdict.map((v) => v.spanContext().traceId).find((id) =>
        spans.some((span) => span.spanContext().traceId === id && span.name === "chat qwen2.5:7b")
      )
      expect(traceId).toBeDefined()
      const trace = spans.filter((span) => span.spanContext().traceId === traceId)
      const byId = new Map(trace.map((span) => [span.spanContext().spanId, span]))
      const one = (predicate: (span: ReadableSpan) => boolean) => {
        const found = trace.filter(predicate)
        expect(found).toHaveLength(1)
        return found[0]!
      }
      const root = one((span) => span.name === "Coordinator.round")
      const rootId = root.spanContext().spanId
      expect(root.attributes["swarm.rounds"]).toEqual([`AAA@${root.attributes["swarm.ts"]}`])
      // Wall-clock times, though the run's own clock is virtual and stands still within a round.
      expect(root.duration[0] * 1e9 + root.duration[1]).toBeGreaterThan(0)

      // Each analyst's opinions: a span per analyst, child of the round.
      const opinions = trace.filter((span) => span.name === "Actor.receive RequestOpinions")
      expect(opinions.map(actorOf).sort()).toEqual(["ema_crossover", "llm_analyst", "sma_crossover"])
      expect(opinions.every((span) => parentOf(span) === rootId)).toBe(true)
      expect(opinions.every((span) => span.events.some((e) => e.name === "opinion"))).toBe(true)

      // The LLM call: a GenAI span under its analyst, the HTTP call to the model beneath it.
      const llmAnalyst = opinions.find((span) => actorOf(span) === "llm_analyst")!
      const chat = one((span) => span.name === "chat qwen2.5:7b")
      expect(parentOf(chat)).toBe(llmAnalyst.spanContext().spanId)
      expect(chat.attributes).toMatchObject({
        "gen_ai.system": "ollama",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "qwen2.5:7b",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 15,
        "swarm.agent": "llm_analyst"
      })
      expect(parentOf(one((span) => span.name === "Ollama.chat"))).toBe(chat.spanContext().spanId)

      // The aggregation, child of the round.
      const aggregation = one((span) => span.name === "Consensus.aggregate")
      expect(parentOf(aggregation)).toBe(rootId)
      expect(aggregation.attributes["consensus.changes_target"]).toBe(true)

      // The verdict, inside the risk officer's handling of the judge request; every rule and gate an event.
      const judge = one((span) => span.name === "Actor.receive Judge")
      expect(actorOf(judge)).toBe("risk")
      expect(parentOf(judge)).toBe(rootId)
      const verdict = one((span) => span.name === "Risk.verdict")
      expect(parentOf(verdict)).toBe(judge.spanContext().spanId)
      expect(verdict.events.map((e) => e.name)).toEqual(expect.arrayContaining([
        "rule At most two positions",
        "gate max_drawdown_halt",
        "gate daily_loss_breaker",
        "gate max_position",
        "gate no_negative_cash"
      ]))
      expect(verdict.events.every((e) => ["pass", "reduce", "reject", "skipped"].includes(String(e.attributes?.result)))).toBe(true)
      // `swarm trace` reads the same events from the span store (their attributes made as it reads them).
      const stored = telemetry.store.trace(traceId!)!.spans.find((span) => span.spanId === verdict.spanContext().spanId)!
      expect(stored.events.map((e) => ({ name: e.name, attributes: e.attributes }))).toEqual(verdict.events.map((e) => ({ name: e.name, attributes: e.attributes })))

      // The ledger shows its books to the risk officer; the desk takes the order.
      const view = one((span) => span.name === "Actor.receive ViewBooks")
      expect([actorOf(view), parentOf(view)]).toEqual(["ledger", judge.spanContext().spanId])
      const place = one((span) => span.name === "Actor.receive PlaceOrders")
      expect([actorOf(place), parentOf(place)]).toEqual(["desk", judge.spanContext().spanId])
      expect(place.events.map((e) => e.name)).toContain("order placed")

      // The bars reach the desk, which books them with the ledger.
      const open = one((span) => span.name === "Actor.receive MarketOpen")
      expect([actorOf(open), parentOf(open)]).toEqual(["desk", rootId])
      const book = trace.find((span) => span.name === "Actor.receive Book" && parentOf(span) === open.spanContext().spanId)!
      expect(actorOf(book)).toBe("ledger")

      // At least five agents, one trace; every span's parent is in it.
      expect(new Set(trace.map(actorOf).filter((a) => a !== undefined))).toEqual(
        new Set(["coordinator", "sma_crossover", "ema_crossover", "llm_analyst", "risk", "ledger", "desk"])
      )
      expect(trace.every((span) => span === root || byId.has(parentOf(span)!))).toBe(true)
    }))

  it.scopedLive("a model call that failed is an error span, of the failure's type (its HTTP span beneath too)", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ status: 500, error: "llama runner process has terminated" }))
      const s = strategy({
        agents: [
          { type: "sma_crossover", params: { fast: 3, slow: 8 } },
          { type: "llm_analyst", params: { model: "qwen2.5:7b" } }
        ],
        llm: { cacheTtlSeconds: 0, retries: 0 }
      })
      const model = Ollama.make({ host: fake.url })
      const events: Array<RunEvent> = []
      const { spans, value: result } = yield* traced(
        Backtest.run({ strategy: s, feed: market(["AAA"]), traceRounds: 1, llm: { model }, onEvent: (event) => void events.push(event) })
      )
      expect(result.status).toBe("completed")
      const chats = spans.filter((span) => span.name === "chat qwen2.5:7b")
      expect(chats.length).toBeGreaterThan(5)
      for (const chat of chats) {
        expect(chat.status.code).toBe(SpanStatusCode.ERROR)
        expect(chat.status.message).toMatch(/refused the request \(500\): llama runner process has terminated/)
        expect(chat.attributes).toMatchObject({ "error.type": "LlmRequestFailed", "swarm.llm.outcome": "error", "gen_ai.usage.input_tokens": 0 })
        expect(chat.events.find((e) => e.name === "exception")?.attributes?.["exception.message"]).toMatch(/\(500\)/)
        const http = spans.filter((span) => span.name === "Ollama.chat" && parentOf(span) === chat.spanContext().spanId)
        expect(http.map((span) => span.status.code)).toEqual([SpanStatusCode.ERROR])
      }
      const calls = events.flatMap((event) => event._tag === "LlmCalled" ? [event.call] : [])
      expect(calls.length).toBe(chats.length)

      // Its replay, answered from the recording (no model call): the same error spans, the type read from the record.
      const started = events[0]?._tag === "RunStarted" ? events[0].llm : undefined
      const replayed = yield* traced(
        Backtest.run({ strategy: s, feed: market(["AAA"]), traceRounds: 1, llm: { model, recorded: calls, started: started! } })
      )
      const again = replayed.spans.filter((span) => span.name === "chat qwen2.5:7b")
      expect(again).toHaveLength(chats.length)
      expect(fake.calls()).toBe(calls.length)
      for (const chat of again) {
        expect(chat.status.code).toBe(SpanStatusCode.ERROR)
        expect(chat.attributes).toMatchObject({ "error.type": "LlmRequestFailed", "swarm.llm.cache": "recorded" })
      }
    }))

  it.effect("tracing changes nothing the run records; an untraced backtest makes no span at all", () =>
    Effect.gen(function*() {
      const feed = market(["AAA", "BBB", "CCC"], 120)
      const s = strategy({ symbols: ["AAA", "BBB", "CCC"] })
      const plain = yield* traced(Backtest.run({ strategy: s, feed }))
      expect(plain.spans).toEqual([])
      expect(plain.telemetry.store.size).toBe(0)
      const every = yield* traced(Backtest.run({ strategy: s, feed, traceRounds: 1 }))
      expect(every.spans.length).toBeGreaterThan(1_000)
      expect(every.value.checksum).toBe(plain.value.checksum)
      expect(every.value.counts).toEqual(plain.value.counts)
    }))

  it.effect("one cycle in n is traced, from the first; paper runs trace every cycle by default", () =>
    Effect.gen(function*() {
      const feed = market(["AAA", "BBB"], 95)
      const tenth = yield* traced(Backtest.run({ strategy: strategy({ symbols: ["AAA", "BBB"] }), feed, traceRounds: 0.1 }))
      const roots = tenth.spans.filter((span) => span.name === "Coordinator.round")
      expect(roots).toHaveLength(10)
      expect(roots.map((r) => (r.attributes["swarm.rounds"] as Array<string>).length)).toEqual(new Array(10).fill(2))
      // The configured rate for backtests, read from the layer.
      const configured = yield* traced(Backtest.run({ strategy: strategy(), feed: market(["AAA"], 40) }), {
        rates: { paper: 1, backtest: 0.25 }
      })
      expect(configured.spans.filter((span) => span.name === "Coordinator.round")).toHaveLength(10)
      const paper = yield* traced(Backtest.run({ strategy: strategy(), feed: market(["AAA"], 30), mode: "paper" }))
      expect(paper.spans.filter((span) => span.name === "Coordinator.round")).toHaveLength(30)
    }))

  it.effect("an order filled at a later open: a fill span in its round's trace, linked to the open's round, where the desk records the fill and the ledger books it", () =>
    Effect.gen(function*() {
      // Every round traced, as in a paper run: the open that fills an order has a trace of its own.
      const { spans, value: result } = yield* traced(Backtest.run({ strategy: strategy(), feed: market(["AAA"]), traceRounds: 1 }))
      expect(result.counts.fills).toBeGreaterThan(1)
      const fills = spans.filter((span) => span.name === "ExecutionDesk.fill")
      expect(fills).toHaveLength(result.counts.fills)
      const byId = new Map(spans.map((span) => [span.spanContext().spanId, span]))
      for (const fill of fills) {
        const orderId = fill.attributes["order.id"]
        // Money in dollars, as the price is (not the fill's integer micros: 9954350000 for $9,954.35).
        const notional = fill.attributes["fill.notional"] as number
        expect(notional).toBeCloseTo((fill.attributes["fill.quantity"] as number) * (fill.attributes["fill.price"] as number), 5)
        expect(fill.attributes["fill.commission"] as number).toBeLessThan(notional / 100)
        // In the trace of the round that placed the order, under the desk's placing of it.
        const place = byId.get(parentOf(fill)!)!
        expect(place.name).toBe("Actor.receive PlaceOrders")
        expect(place.events.find((e) => e.name === "order placed")?.attributes?.["order.id"]).toBe(orderId)
        expect(fill.spanContext().traceId).toBe(place.spanContext().traceId)
        // Linked to the desk's handling of the open, in that round's trace: the fill an event there, the booking beneath it.
        expect(fill.links).toHaveLength(1)
        const open = byId.get(fill.links[0]!.context.spanId)!
        expect([open.name, actorOf(open)]).toEqual(["Actor.receive MarketOpen", "desk"])
        expect(open.spanContext().traceId).not.toBe(fill.spanContext().traceId)
        expect(open.events.find((e) => e.name === "order filled" && e.attributes?.["order.id"] === orderId)?.attributes).toMatchObject({
          "swarm.round": fill.attributes["swarm.round"],
          "fill.price": fill.attributes["fill.price"]
        })
        expect(spans.some((span) => span.name === "Actor.receive Book" && parentOf(span) === open.spanContext().spanId)).toBe(true)
      }
    }))

  it.effect("an intent held for an operator: its wait is a span of its round, and so is its execution", () =>
    Effect.gen(function*() {
      const s = strategy({ risk: { approval: { notionalPctAbove: 1, policy: "pause" } } })
      const { spans, value: result } = yield* traced(Backtest.run({
        strategy: s,
        feed: market(["AAA"]),
        traceRounds: 1,
        approver: () => Effect.succeed({ approved: true, by: "operator", reason: "fine" })
      }))
      expect(result.counts.orders).toBeGreaterThan(0)
      const wait = spans.find((span) => span.name === "Approval.wait")!
      expect(wait.attributes).toMatchObject({ "approval.outcome": "approved", "approval.by": "operator" })
      const verdict = spans.find((span) => span.spanContext().spanId === parentOf(wait))!
      expect([verdict.name, verdict.attributes["risk.outcome"]]).toEqual(["Risk.verdict", "needs_approval"])
      const placed = spans.find((span) => span.name === "Actor.receive PlaceOrders" && parentOf(span) === wait.spanContext().spanId)
      expect(placed?.spanContext().traceId).toBe(wait.spanContext().traceId)
    }))

  it.effect("the in-process store keeps the last spans only, and lists the rounds whose root it still holds", () =>
    Effect.gen(function*() {
      const { telemetry, value: result } = yield* traced(
        Backtest.run({ strategy: strategy(), feed: market(["AAA"], 200), traceRounds: 1 }),
        { capacity: 300 }
      )
      const store = telemetry.store
      expect(store.size).toBe(300)
      const answer = store.query(result.runId, undefined, "test")
      expect(answer.store).toMatchObject({ capacity: 300, spans: 300 })
      // Fewer than the 200 traced rounds, the latest ones, each with its root span held.
      expect(answer.rounds.length).toBeGreaterThan(10)
      expect(answer.rounds.length).toBeLessThan(200)
      expect(answer.rounds.at(-1)!.ts).toBe(result.to)
      expect(answer.trace!.spans.filter((span) => span.parentSpanId === undefined).map((s) => s.name)).toEqual(["Coordinator.round"])
      // A round asked by its id, by its time, or not held.
      const last = answer.rounds.at(-1)!
      expect(store.query(result.runId, last.rounds[0], "test").trace!.traceId).toBe(last.traceId)
      expect(store.query(result.runId, new Date(last.ts).toISOString(), "test").trace!.traceId).toBe(last.traceId)
      expect(store.query(result.runId, `AAA@${answer.rounds[0]!.ts - 86_400_000 * 30}`, "test").trace).toBeNull()
      // A round by its symbol and date, as the CLI prints it: that symbol's only, not any name before a date.
      const day = new Date(last.ts).toISOString().slice(0, 10)
      expect(store.query(result.runId, `AAA@${day}`, "test").trace!.traceId).toBe(last.traceId)
      expect(store.query(result.runId, `ZZZ@${day}`, "test").trace).toBeNull()
      expect(store.query(result.runId, `AAA@${last.ts}x`, "test").trace).toBeNull()
      expect(store.query("no such run", undefined, "test")).toMatchObject({ rounds: [], trace: null })
      // The tree as `swarm trace` prints it.
      const text = TraceTree.render(answer.trace!)
      expect(text.split("\n")[0]).toMatch(/^Coordinator\.round {2}.*AAA@\d+.*\+0\.00 ms {2}\d+\.\d\d ms$/)
      expect(text).toContain("├─ Actor.receive RequestOpinions  sma_crossover  1 opinion")
    }))
})
