/**
 * The whole server on a real port: the first admin made on an empty database, an RPC client over
 * HTTP with its key creating a strategy and starting a run, the run's events over RPC and over SSE
 * (the same lines), /health, and requests without a key refused. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, Schema, Stream } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import { bootstrap } from "../../src/edge/Bootstrap.js"
import * as Http from "../../src/edge/Http.js"
import * as Server from "../../src/edge/Server.js"
import * as Migrations from "../../src/store/Migrations.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { symbolsOf } from "../store/fixtures/workload.js"
import { rpcClient } from "./fixtures.js"

const client = rpcClient

/** The `data:` of the SSE messages that carry a run event (those with an `id:`), in order. */
const sseData = (text: string) =>
  text.split("\n\n").map((block) => block.split("\n")).filter((lines) => lines.some((line) => line.startsWith("id: ")))
    .map((lines) => lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice("data: ".length)).join("\n"))

for (const backend of backends) {
  layer(Server.layer(backend.store, { port: 0, logRequests: false }), { timeout: startTimeout, excludeTestServices: true })(
    `the server (${backend.name})`,
    (it) => {
      it.scoped("an admin made on first start drives a run over RPC; its events are the same over RPC and SSE", () =>
        Effect.gen(function*() {
          const made = yield* bootstrap()
          expect(made.created).toBe(true)
          if (!made.created) return
          expect((yield* bootstrap()).created).toBe(false)
          const base = yield* Http.baseUrl

          const health = yield* Effect.promise(() => fetch(`${base}/health`).then((r) => r.json()))
          expect(health).toMatchObject({ status: "ok", database: { kind: backend.name, schema: { migration: Migrations.latest, buildLatest: Migrations.latest } } })

          const admin = yield* client(base, made.key)
          yield* admin("strategies.create", {
            strategy: Schema.decodeUnknownSync(Strategy)({
              name: "served",
              symbols: symbolsOf(2),
              agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }]
            })
          })
          const run = yield* admin("runs.start", { strategy: "served", mode: "backtest", data: { _tag: "synthetic", bars: 300 } })
          const overRpc = yield* admin("runs.events", { run: run.id }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
          expect(overRpc.at(-1)!.tag).toBe("RunCompleted")

          const sse = yield* Effect.promise(() =>
            fetch(`${base}/v1/runs/${run.id}/events?token=${made.key}`).then(async (r) => ({ status: r.status, body: await r.text() }))
          )
          expect(sse.status).toBe(200)
          expect(sseData(sse.body)).toEqual(overRpc.map((e) => e.json))

          // A newer build migrated the database (a rolling upgrade): this older server says so, degraded.
          const sql = yield* SqlClient.SqlClient
          yield* sql`insert into swarm_migrations (migration_id, name) values (${Migrations.latest + 1}, 'from_a_newer_build')`
          const behind = yield* Effect.promise(() => fetch(`${base}/health`).then(async (r) => ({ status: r.status, body: await r.json() })))
          expect(behind).toMatchObject({
            status: 200,
            body: {
              status: "degraded",
              reasons: [`database: its schema is at migration ${Migrations.latest + 1}, newer than this build knows (${Migrations.latest}): a newer Swarm migrated it`],
              database: { schema: { migration: Migrations.latest + 1, buildLatest: Migrations.latest } }
            }
          })
          yield* sql`delete from swarm_migrations where migration_id = ${Migrations.latest + 1}`
          expect(yield* Effect.promise(() => fetch(`${base}/health`).then((r) => r.json()))).toMatchObject({ status: "ok" })

          const stranger = yield* client(base, "sk_" + "x".repeat(43))
          expect((yield* Effect.flip(stranger("runs.list", {})))._tag).toBe("Unauthorized")
          const noKey = yield* Effect.promise(() => fetch(`${base}/v1/runs/${run.id}/events`).then((r) => r.status))
          expect(noKey).toBe(401)
        }), { timeout: 120_000 })
    }
  )
}
