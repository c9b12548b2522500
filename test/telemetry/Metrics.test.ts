/**
 * Metrics, read back from an in-memory metric reader under the telemetry layer (what an OTLP
 * exporter would be sent): messages handled and restarts by actor role, mailbox depth, dead
 * letters, traced rounds' latency, orders, rejections by rule and gate, approvals waiting, and an
 * LLM analyst's calls, tokens and latency. The registry is the process's: each test compares what
 * it reads before and after.
 */
import { describe, expect, it } from "@effect/vitest"
import { type DataPoint, type Histogram, MetricReader } from "@opentelemetry/sdk-metrics"
import { Deferred, Effect, Schema } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import * as Actor from "../../src/actor/Actor.js"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import * as Ollama from "../../src/llm/Ollama.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import * as Run from "../../src/swarm/Run.js"
import * as Metrics from "../../src/telemetry/Metrics.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"
import { Hold, Item, recorder } from "../actor/fixtures.js"
import * as FakeOllama from "../llm/FakeOllama.js"

class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve()
  }
}

type Point = DataPoint<number | Histogram>
type Attributes = Record<string, string>

/** Every metric's data points, by name, as a reader collects them now. */
const collect = (reader: MetricReader) =>
  Effect.promise(async () => {
    const { resourceMetrics } = await reader.collect()
    const out = new Map<string, Array<Point>>()
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) out.set(metric.descriptor.name, [...(out.get(metric.descriptor.name) ?? []), ...(metric.dataPoints as Array<Point>)])
    }
    return out
  })

/** The sum of a metric's points whose attributes include `match` (a histogram's count, or `sum` of its values). */
const total = (metrics: Map<string, Array<Point>>, name: string, match: Attributes = {}, of: "count" | "sum" = "count") =>
  (metrics.get(name) ?? [])
    .filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v))
    .reduce((acc, p) => acc + (typeof p.value === "number" ? p.value : of === "count" ? p.value.count : (p.value.sum ?? 0)), 0)

const market = (symbols: ReadonlyArray<string>, bars: number) => Feed.synthetic({ ...Synthetic.defaults, seed: 11, symbols: [...symbols] as never, bars })

const strategy = (overrides: Record<string, unknown> = {}) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "metered",
    symbols: ["AAA", "BBB", "CCC"],
    initialCash: "100000",
    allowShort: true,
    agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }, { type: "ema_crossover", params: { fast: 3, slow: 8 } }],
    sizing: { mode: "percent_of_equity", value: 10 },
    // One position at a time over three symbols: the rule rejects.
    rules: [{ id: "one", name: "One position", kind: "max_open_positions", priority: 1, params: { count: 1 } }],
    ...overrides
  })

const withReader = <A, E, R>(f: (reader: MetricReader) => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const reader = new TestReader()
    return f(reader).pipe(Effect.provide(Telemetry.make({ metricReaders: [reader] })))
  })

describe("metrics", () => {
  it("actor roles: a few labels whatever the agents and runs are called", () => {
    expect(["/user/run/analysts/sma_crossover", "/user/run/analysts/my_llm"].map(Metrics.roleOf)).toEqual(["analyst", "analyst"])
    expect(["/user/run/coordinator", "/user/run/risk", "/user/run/desk", "/user/run/ledger"].map(Metrics.roleOf)).toEqual(["coordinator", "risk", "desk", "ledger"])
    // The system agent's session of each run (SystemAgent.ts names them by run): one role, not a label per chat.
    expect(["/user/system/agent/run_02f030f58a44-1", "/user/system/agent/run_0506bd2b20ff-17"].map(Metrics.roleOf)).toEqual(["chat_session", "chat_session"])
    expect(Metrics.roleOf("/user/system/agent")).toBe("agent")
    expect(Metrics.roleOf("/user/run/$12")).toBe("anonymous")
  })

  it.scopedLive("a backtest: messages and restarts by role, orders, rejections by rule, traced rounds' latency, LLM tokens", () =>
    withReader((reader) =>
      Effect.gen(function*() {
        const fake = yield* FakeOllama.start(() => ({ content: JSON.stringify({ direction: "short", confidence: 0.7, rationale: "down" }), tokensIn: 200, tokensOut: 12 }))
        const before = yield* collect(reader)
        const s = strategy({
          agents: [
            { type: "sma_crossover", params: { fast: 3, slow: 8 } },
            { type: "ema_crossover", params: { fast: 3, slow: 8 } },
            { type: "llm_analyst", params: { model: "qwen2.5:7b" } }
          ],
          llm: { cacheTtlSeconds: 0, retries: 0 }
        })
        const result = yield* Backtest.run({
          strategy: s,
          feed: market(["AAA", "BBB", "CCC"], 60),
          traceRounds: 0.5,
          faults: Run.faultsOf({ sma_crossover: { every: 25 } }),
          llm: { model: Ollama.make({ host: fake.url }) }
        })
        expect(result.status).toBe("completed")
        const after = yield* collect(reader)
        const delta = (name: string, match?: Attributes, of?: "count" | "sum") => total(after, name, match, of) - total(before, name, match, of)

        // The coordinator handles one update per slice; each analyst one request per slice, restarts aside.
        expect(delta("swarm.actor.messages", { actor: "coordinator" })).toBe(result.counts.slices)
        expect(delta("swarm.actor.messages", { actor: "analyst" })).toBeGreaterThanOrEqual(2 * result.counts.slices)
        expect(delta("swarm.actor.messages", { actor: "ledger" })).toBeGreaterThanOrEqual(result.counts.slices)
        expect(delta("swarm.actor.restarts", { actor: "analyst" })).toBe(result.counts.restarts)
        expect(result.counts.restarts).toBeGreaterThan(0)
        expect(delta("swarm.orders")).toBe(result.counts.orders)
        expect(delta("swarm.risk.rejections", { check: "rule", name: "One position" })).toBeGreaterThan(0)
        expect(delta("swarm.risk.rejections")).toBe(result.counts.rejected)
        // Half the cycles traced, each a latency.
        expect(delta("swarm.round.duration")).toBe(result.counts.slices / 2)
        expect(delta("swarm.round.duration", {}, "sum")).toBeGreaterThan(0)
        // The model's tokens, per call, as the server counted them.
        const calls = fake.calls()
        expect(calls).toBeGreaterThan(0)
        expect(delta("swarm.llm.calls", { "gen_ai.request.model": "qwen2.5:7b", outcome: "ok" })).toBe(calls)
        expect(delta("gen_ai.client.token.usage", { "gen_ai.token.type": "input", "gen_ai.system": "ollama" }, "sum")).toBe(200 * calls)
        expect(delta("gen_ai.client.token.usage", { "gen_ai.token.type": "output" }, "sum")).toBe(12 * calls)
        expect(delta("gen_ai.client.operation.duration", { "gen_ai.request.model": "qwen2.5:7b" })).toBe(calls)
      })
    ))

  it.effect("approvals waiting: counted while an intent waits for its operator", () =>
    withReader((reader) =>
      Effect.gen(function*() {
        const waiting: Array<number> = []
        const result = yield* Backtest.run({
          strategy: strategy({ rules: [], risk: { approval: { notionalPctAbove: 1, policy: "pause" } } }),
          feed: market(["AAA", "BBB", "CCC"], 60),
          approver: () => Effect.map(collect(reader), (m) => (waiting.push(total(m, "swarm.approvals.waiting")), { approved: false, by: "op", reason: "no" }))
        })
        expect(waiting.length).toBeGreaterThan(0)
        expect(waiting.every((n) => n >= 1)).toBe(true)
        expect(total(yield* collect(reader), "swarm.approvals.waiting")).toBe(0)
        expect(result.counts.orders).toBe(0)
      })
    ))

  it.scoped("mailbox depth and dead letters of a live actor system", () =>
    withReader((reader) =>
      Effect.gen(function*() {
        const before = yield* collect(reader)
        const gate = yield* Deferred.make<void>()
        const seen: Array<{ from: string; n: number; sender: string | undefined; seq: number }> = []
        const slow = yield* Actor.spawn(recorder(gate, seen), { name: "slow" })
        yield* slow.tell(new Hold())
        for (let n = 0; n < 5; n++) yield* slow.tell(new Item({ from: "test", n }))
        yield* Effect.yieldNow()
        const held = yield* collect(reader)
        expect(total(held, "swarm.actor.mailbox.depth", { actor: "slow" })).toBe(5)
        yield* Deferred.succeed(gate, undefined)
        const system = yield* ActorSystem.ActorSystem
        yield* system.stop(slow)
        yield* slow.tell(new Hold())
        const after = yield* collect(reader)
        expect(total(after, "swarm.actor.mailbox.depth", { actor: "slow" })).toBe(0)
        expect(total(after, "swarm.actor.messages", { actor: "slow" }) - total(before, "swarm.actor.messages", { actor: "slow" })).toBe(6)
        expect(total(after, "swarm.actor.dead_letters", { reason: "stopped" }) - total(before, "swarm.actor.dead_letters", { reason: "stopped" })).toBe(1)
      }).pipe(Effect.provide(ActorSystem.layer()))
    ))
})
