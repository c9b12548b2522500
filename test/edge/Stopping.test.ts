/**
 * A call the server's stopping cuts off is answered `Unavailable` (RpcStopping.ts): `runs.events`
 * following a paper run over HTTP (ndjson, as the CLI calls) while the whole server's scope
 * closes. On every back-end. And the exits that stay as they are: a failure, a
 * success, an interruption the client asked for.
 */
import { FetchHttpClient } from "@effect/platform"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Option, Schema, Scope, Stream } from "effect"
import { SwarmRpcs } from "../../schemas/Rpc.js"
import { Strategy } from "../../schemas/Strategy.js"
import { bootstrap } from "../../src/edge/Bootstrap.js"
import * as Http from "../../src/edge/Http.js"
import { clientKey } from "../../src/edge/RpcAuth.js"
import { answerOf, STOPPING } from "../../src/edge/RpcStopping.js"
import * as Server from "../../src/edge/Server.js"
import { backends } from "../store/fixtures/backends.js"
import { symbolsOf } from "../store/fixtures/workload.js"
import { eventually } from "./fixtures.js"

const clientOver = (protocol: Layer.Layer<RpcClient.Protocol, never, never>, key: string) =>
  RpcClient.make(SwarmRpcs, { flatten: true }).pipe(Effect.provide(Layer.merge(protocol, clientKey(key))))

const overHttp = (base: string) =>
  RpcClient.layerProtocolHttp({ url: `${base}/rpc` }).pipe(Layer.provide(FetchHttpClient.layer), Layer.provide(RpcSerialization.layerNdjson))

for (const backend of backends) {
  describe(`a call cut off by the server stopping (${backend.name})`, () => {
    it.scopedLive("runs.events of a running paper run, over HTTP as the CLI calls, ends Unavailable", () =>
      Effect.gen(function*() {
        const serverScope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Server.layer(backend.store, { port: 0, logRequests: false }), serverScope)
        const made = yield* Effect.provide(bootstrap(), context)
        if (!made.created) return expect.fail("the first start made no admin")
        const base = yield* Effect.provide(Http.baseUrl, context)

        const http = yield* clientOver(overHttp(base), made.key)
        yield* http("strategies.create", {
          strategy: Schema.decodeUnknownSync(Strategy)({ name: "cut off", symbols: symbolsOf(1), agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }] })
        })
        // 5,000 daily bars at 86,400x: a bar a second, running long after the server stops.
        const run = yield* http("runs.start", { strategy: "cut off", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 86_400 })
        let seen = 0
        const follow = (client: typeof http) =>
          client("runs.events", { run: run.id }).pipe(Stream.runForEach(() => Effect.sync(() => seen++)), Effect.exit, Effect.fork)
        const follower = yield* follow(http)
        // The stream is open (it has the run's first events) before the server goes.
        expect(yield* eventually(() => seen >= 1)).toBe(true)

        yield* Scope.close(serverScope, Exit.void)
        const exit = yield* Fiber.join(follower)
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isSuccess(exit)) return
        expect(Cause.isInterruptedOnly(exit.cause)).toBe(false)
        expect(Option.getOrUndefined(Cause.failureOption(exit.cause))).toMatchObject({ _tag: "Unavailable", reason: STOPPING })
      }), { timeout: 120_000 })
  })
}

describe("answerOf", () => {
  const exit = (cause: unknown) => ({ _tag: "Exit", requestId: "1", exit: { _tag: "Failure", cause } }) as const
  const runtime = (id: number) => ({ _tag: "Runtime", id, startTimeMillis: 0 }) as const
  const interrupt = (fiberId: unknown) => ({ _tag: "Interrupt", fiberId })
  const unavailable = exit({ _tag: "Fail", error: { _tag: "Unavailable", reason: STOPPING } })

  it("answers the server's interruptions Unavailable, alone or together", () => {
    expect(answerOf(exit(interrupt(runtime(-503))) as never)).toEqual(unavailable)
    expect(answerOf(exit(interrupt({ _tag: "None" })) as never)).toEqual(unavailable)
    expect(answerOf(exit({ _tag: "Parallel", left: interrupt(runtime(-503)), right: { _tag: "Sequential", left: { _tag: "Empty" }, right: interrupt(runtime(7)) } }) as never))
      .toEqual(unavailable)
  })

  it("leaves failures, defects, successes, chunks, and the client's own interruptions as they are", () => {
    const kept = [
      exit({ _tag: "Fail", error: { _tag: "RunNotFound", run: "x" } }),
      exit({ _tag: "Parallel", left: interrupt(runtime(-503)), right: { _tag: "Die", defect: "boom" } }),
      exit({ _tag: "Empty" }),
      exit(interrupt(runtime(-499))),
      exit(interrupt({ _tag: "Composite", left: runtime(-503), right: runtime(-499) })),
      { _tag: "Exit", requestId: "1", exit: { _tag: "Success", value: 1 } },
      { _tag: "Chunk", requestId: "1", values: [1] },
      { _tag: "Defect", defect: "boom" }
    ]
    for (const response of kept) expect(answerOf(response as never)).toBe(response)
  })
})
