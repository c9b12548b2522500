/**
 * The server with telemetry, on a real port: a paper run's rounds are traced into the in-process
 * store, `traces.get` reads them for the run's owner only, `swarm trace` (the command line, in
 * process, over RPC as an operator runs it) prints the span tree; RPC and HTTP requests are spans
 * too (with the SSE key kept out of them); `/health` names the telemetry; open SSE streams are
 * counted.
 */
import { expect, layer } from "@effect/vitest"
import { MetricReader } from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Chunk, Effect, Layer, Schema, Stream } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import { bootstrap } from "../../src/edge/Bootstrap.js"
import * as Http from "../../src/edge/Http.js"
import * as Server from "../../src/edge/Server.js"
import { roundText } from "../../src/cli/Summary.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"
import { lines, swarm } from "../cli/harness.js"
import { eventually, rpcClient } from "../edge/fixtures.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"

class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve()
  }
}

const exporter = new InMemorySpanExporter()
const reader = new TestReader()
const backend = backends[0]!

const sseSubscribers = Effect.promise(async () => {
  const { resourceMetrics } = await reader.collect()
  const points: Array<{ readonly value: unknown }> = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
    .filter((m) => m.descriptor.name === "swarm.sse.subscribers")
    .flatMap((m): Array<{ readonly value: unknown }> => m.dataPoints)
  return points.reduce((sum: number, p) => sum + (p.value as number), 0)
})

const server = Server.layer(backend.store, { port: 0, logRequests: false }).pipe(
  Layer.provideMerge(Telemetry.make({ spanProcessors: [new SimpleSpanProcessor(exporter)], metricReaders: [reader] }))
)

layer(server, { timeout: startTimeout, excludeTestServices: true })("swarm trace against a server with telemetry", (it) => {
  it.scoped("a paper run's rounds, over RPC and as the command line prints them; owner-checked; requests are spans", () =>
    Effect.gen(function*() {
      const made = yield* bootstrap()
      if (!made.created) return expect.unreachable("a fresh database")
      const base = yield* Http.baseUrl
      const admin = yield* rpcClient(base, made.key)
      yield* admin("strategies.create", {
        strategy: Schema.decodeUnknownSync(Strategy)({
          name: "traced paper",
          symbols: ["AAA"],
          allowShort: true,
          agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }, { type: "ema_crossover", params: { fast: 3, slow: 8 } }],
          sizing: { mode: "percent_of_equity", value: 10 }
        })
      })
      const run = yield* admin("runs.start", { strategy: "traced paper", mode: "paper", data: { _tag: "synthetic", bars: 40 }, speed: 86_400_000 })
      const events = yield* admin("runs.events", { run: run.id }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
      expect(events.at(-1)!.tag).toBe("RunCompleted")

      // Every round of a paper run is traced; the latest comes whole.
      const answer = yield* admin("traces.get", { run: run.id })
      expect(answer.run).toBe(run.id)
      expect(answer.rounds).toHaveLength(40)
      expect(answer.store.description).toContain("in-process")
      const spans = answer.trace!.spans
      expect(spans.filter((s) => s.parentSpanId === undefined).map((s) => s.name)).toEqual(["Coordinator.round"])
      expect(new Set(spans.map((s) => s.attributes["actor.name"]).filter((a) => a !== undefined))).toEqual(
        new Set(["coordinator", "sma_crossover", "ema_crossover", "desk", "ledger"])
      )
      const third = answer.rounds[2]!
      expect((yield* admin("traces.get", { run: run.id, round: third.rounds[0]! })).trace!.traceId).toBe(third.traceId)

      // The command line, as an operator runs it.
      const environment = { SWARM_SERVER: base, SWARM_API_KEY: made.key }
      const latest = yield* swarm(["trace", run.id], { environment })
      expect(latest.code).toBe(0)
      const out = lines(latest.stdout)
      expect(out[0]).toMatch(new RegExp(`^run ${run.id}: 40 traced rounds kept in the server's span store \\(\\d[\\d,]* of 50,000 spans held\\)$`))
      // The listing (the latest 20 of 40), then the latest round's tree: rounds and times as the
      // command line prints them (a date alone for a daily bar), not the server's ids.
      const when = "\\d{4}-\\d\\d-\\d\\d(?: [\\d:.]+Z)?"
      expect(out.filter((line) => new RegExp(`^${when} {2}AAA@${when} {2}\\d+ spans {2}\\d+\\.\\d\\d ms {2}trace [0-9a-f]{32}$`).test(line))).toHaveLength(20)
      const tree = out.slice(out.findIndex((line) => line.startsWith("Coordinator.round")))
      expect(tree[0]).toMatch(new RegExp(`^Coordinator\\.round {2}${run.id} {2}${when} {2}AAA@${when} {2}.*\\+0\\.00 ms {2}\\d+\\.\\d\\d ms$`))
      // (An order's id, which is made from its round's, is an id: printed as it is.)
      expect(latest.stdout).not.toMatch(/(?<!order\.id=)AAA@\d{10}/)
      expect(tree).toContainEqual(expect.stringMatching(/^├─ Actor\.receive RequestOpinions {2}sma_crossover {2}1 opinion +\+\d+\.\d\d ms {2}\d+\.\d\d ms$/))
      expect(tree).toContainEqual(expect.stringMatching(/^│ {2}└─ Actor\.receive Book {2}ledger +\+\d+\.\d\d ms/))

      const one = yield* swarm(["trace", run.id, third.rounds[0]!], { environment })
      expect(one.code).toBe(0)
      const printed = roundText(third.rounds[0]!)
      expect(lines(one.stdout)[1]).toContain(printed)
      const tail = (text: string) => lines(text).slice(1)
      expect(tail((yield* swarm(["trace", run.id, new Date(third.ts).toISOString()], { environment })).stdout)).toEqual(tail(one.stdout))
      // The round as it was printed names it too.
      expect(tail((yield* swarm(["trace", run.id, printed], { environment })).stdout)).toEqual(tail(one.stdout))
      // --json is the server's answer, its ids as they are.
      const json = yield* swarm(["trace", run.id, "--json"], { environment })
      expect(JSON.parse(json.stdout)).toMatchObject({ run: run.id, trace: { traceId: answer.trace!.traceId } })
      expect(JSON.parse(json.stdout).rounds.at(-1).rounds).toEqual(answer.rounds.at(-1)!.rounds)

      const missing = yield* swarm(["trace", run.id, "AAA@1"], { environment })
      expect(missing.code).toBe(2)
      expect(missing.stderr).toContain(`swarm: <round>: no traced round "AAA@1" of run ${run.id} kept on ${base}`)

      // Another user's run does not exist for them.
      const user = yield* admin("admin.createUser", { name: "mallory", role: "user" })
      const refused = yield* swarm(["trace", run.id], { environment: { SWARM_SERVER: base, SWARM_API_KEY: user.key } })
      expect(refused.code).toBe(2)
      expect(refused.stderr).toContain(`swarm: run: no run "${run.id}" on ${base}`)
      const mallory = yield* rpcClient(base, user.key)
      expect((yield* Effect.flip(mallory("traces.get", { run: run.id })))._tag).toBe("RunNotFound")

      // Requests are spans too: the RPC procedure inside the HTTP request, the SSE key not in them.
      const sse = yield* Effect.promise(() => fetch(`${base}/v1/runs/${run.id}/events?token=${made.key}`).then((r) => r.text()))
      expect(sse).toContain("RunCompleted")
      // The key percent-encoded as the server decodes it (`%74oken` is `token`) is a key too.
      const encoded = yield* Effect.promise(() => fetch(`${base}/v1/runs/${run.id}/events?%74oken=${made.key}&since=1`).then((r) => r.text()))
      expect(encoded).toContain("RunCompleted")
      yield* eventually(() => exporter.getFinishedSpans().filter((s) => s.attributes["url.path"] === `/v1/runs/${run.id}/events`).length >= 2)
      const finished = exporter.getFinishedSpans()
      const rpc = finished.find((s) => s.name === "RpcServer.traces.get")!
      const http = finished.find((s) => s.spanContext().spanId === rpc.parentSpanContext?.spanId)!
      expect([http.attributes["http.request.method"], http.attributes["url.path"], http.attributes["http.response.status_code"]]).toEqual(["POST", "/rpc", 200])
      const sseSpan = finished.find((s) => s.attributes["url.path"] === `/v1/runs/${run.id}/events`)!
      expect(String(sseSpan.attributes["url.full"])).toContain("token=REDACTED")
      expect(JSON.stringify(finished.map((s) => s.attributes))).not.toContain(made.key)

      // An open SSE stream is counted until its client leaves.
      const live = yield* admin("runs.start", { strategy: "traced paper", mode: "paper", data: { _tag: "synthetic", bars: 40 }, speed: 86_400 })
      const before = yield* sseSubscribers
      const controller = new AbortController()
      const stream = yield* Effect.promise(() => fetch(`${base}/v1/runs/${live.id}/events`, { headers: { authorization: `Bearer ${made.key}` }, signal: controller.signal }))
      const body = stream.body!.getReader()
      yield* Effect.promise(() => body.read())
      expect(yield* sseSubscribers).toBe(before + 1)
      controller.abort()
      yield* Effect.promise(() => body.cancel().catch(() => {}))
      let now = before + 1
      for (let i = 0; i < 100 && now !== before; i++) {
        yield* Effect.sleep("20 millis")
        now = yield* sseSubscribers
      }
      expect(now).toBe(before)
      yield* admin("runs.stop", { run: live.id })

      // /health says which telemetry this server has.
      const health = yield* Effect.promise(() => fetch(`${base}/health`).then((r) => r.json() as Promise<{ telemetry: unknown }>))
      expect(health.telemetry).toEqual({ kind: "in-process", description: expect.stringContaining("the last 50,000 spans kept in this process") })
    }), { timeout: 120_000 })
})
