/**
 * A stopped run's recording ends where it was stopped — between slices, or in the middle of one
 * whose model calls were still out — and `replay` reproduces it up to there, byte for byte: the
 * world's teardown writes nothing a replay would not.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Schema, Stream } from "effect"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import type { ChatRequest, LanguageModel } from "../../src/llm/LanguageModel.js"
import * as LlmRuntime from "../../src/llm/LlmRuntime.js"
import * as DataSource from "../../src/market/DataSource.js"
import * as Feed from "../../src/market/Feed.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { marketConfig, symbolsOf } from "./fixtures/workload.js"

/** A model that answers at once until `slow.from` calls, then takes 5 s (and says so on `slow.asked`). */
const slowing = () => {
  const slow: { from: number; calls: number; asked: Deferred.Deferred<void> | undefined } = { from: Infinity, calls: 0, asked: undefined }
  const model: LanguageModel["Type"] = {
    backend: { kind: "ollama", description: "slowing ollama" },
    chat: (request: ChatRequest) =>
      Effect.suspend(() => {
        const n = ++slow.calls
        const answer = {
          content: request.messages[0]!.content.includes("researcher")
            ? JSON.stringify({ argument: `point ${n}`, conviction: 0.5 })
            : JSON.stringify({ direction: n % 3 === 0 ? "short" : "long", confidence: 0.8, rationale: `call ${n}` }),
          toolCalls: [],
          tokensIn: 40,
          tokensOut: 8
        }
        if (n < slow.from) return Effect.succeed(answer)
        if (slow.asked !== undefined) Deferred.unsafeDone(slow.asked, Effect.void)
        return Effect.as(Effect.sleep(5_000), answer)
      }),
    chatStream: () => Stream.die("not used")
  }
  return { model, slow }
}

const paper = (name: string, agents: ReadonlyArray<unknown>, events: Array<RunEvent>, bars: number): StoredRun.Options => {
  const config = marketConfig(2, bars)
  return {
    strategy: Schema.decodeUnknownSync(Strategy)({
      name,
      symbols: symbolsOf(2),
      allowShort: true,
      agents,
      sizing: { mode: "percent_of_equity", value: 10 },
      consensus: { deadlineMillis: 1_000 },
      llm: { cacheTtlSeconds: 0, retries: 0 }
    }),
    feed: Feed.synthetic(config),
    dataSource: DataSource.synthetic(config),
    mode: "paper",
    onEvent: (event) => void events.push(event)
  }
}

for (const backend of backends) {
  const { model, slow } = slowing()
  layer(Layer.merge(backend.store, LlmRuntime.layerWith(model)), { timeout: startTimeout, excludeTestServices: true })(
    `stopped runs (${backend.name})`,
    (it) => {
      describe("replay", () => {
        it.effect("a paper run stopped while its model calls are out replays exactly, up to where it was stopped", () =>
          Effect.gen(function*() {
            const events: Array<RunEvent> = []
            slow.calls = 0
            // Two symbols from bar 34, the analyst's call and the debate's bull, bear and judge: eight
            // calls a slice answer at once for three slices; in the fourth they hang until the stop.
            slow.from = 3 * 2 * 4 + 1
            slow.asked = yield* Deferred.make<void>()
            const agents = [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "llm_analyst" }, { type: "llm_debate", name: "debate" }]
            const fiber = yield* Effect.fork(StoredRun.backtest(paper("stopped mid-call", agents, events, 60)))
            yield* Deferred.await(slow.asked)
            yield* Effect.sleep(100)
            yield* Fiber.interrupt(fiber)

            const run = events[0]!.run
            expect((yield* Runs.get(run)).status).toBe("stopped")
            const replayed = yield* StoredRun.replay(run)
            expect(replayed.events).toBe(events.length)
            // Nothing of the slice it was stopped in came after its calls were made: no call, no plan.
            const last = events.at(-1)!
            const stoppedAt = events.filter((e) => e._tag === "LlmCalled").at(-1)!.at
            expect(last.at).toBe(stoppedAt + 86_400_000)
            expect(events.filter((e) => e.at > stoppedAt && (e._tag === "LlmCalled" || e._tag === "ReasoningRecorded"))).toEqual([])
          }), 60_000)

        it.effect("a paper run without LLM analysts stopped between slices replays exactly, up to where it was stopped", () =>
          Effect.gen(function*() {
            const events: Array<RunEvent> = []
            const options = paper("stopped plain", [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }], events, 400)
            // The run waits before its 200th slice until it is stopped, however fast the machine is.
            const waiting = yield* Deferred.make<void>()
            let slices = 0
            const beforeSlice = () => ++slices < 200 ? Effect.void : Effect.zipRight(Deferred.succeed(waiting, undefined), Effect.never)
            const fiber = yield* Effect.fork(StoredRun.backtest({ ...options, beforeSlice }))
            yield* Deferred.await(waiting)
            yield* Effect.sleep(50)
            yield* Fiber.interrupt(fiber)
            expect(slices).toBe(200)
            const run = events[0]!.run
            expect((yield* Runs.get(run)).status).toBe("stopped")
            expect(events.some((e) => e._tag === "OrderFilled")).toBe(true)
            expect(events.some((e) => e._tag === "RunCompleted" || e._tag === "RunFailed")).toBe(false)
            const replayed = yield* StoredRun.replay(run)
            expect(replayed.events).toBe(events.length)
          }), 60_000)
      })
    }
  )
}
