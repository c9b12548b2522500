/**
 * `POST /v1/webhooks/tradingview/:strategyId` on a real server (a free port), over the test's
 * database, with the run manager: the owner gets the webhook secret over RPC (shown once, rotated);
 * an alert with the right secret reaches the strategy's live paper run — recorded as
 * `SignalReceived`, followed by the `tradingview` analyst's opinion — and the run replays byte for
 * byte; a repeat is acknowledged and applied once — answered with the first one's runs from the
 * idempotency keys (this process's, or Redis shared by two servers) when they remember it, from the
 * database when they do not (or Redis is down); every bad request is a typed JSON refusal naming
 * the field (401 for a wrong or missing secret and an unknown strategy alike, 400, 409, 413, 429).
 * On every back-end.
 */
import * as NodeHttp from "node:http"
import { SqlClient } from "@effect/sql"
import { RpcTest } from "@effect/rpc"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer, Metric, Schema } from "effect"
import type { Symbol } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import { WebhookRpcs } from "../../schemas/Webhook.js"
import * as IdempotencyKeys from "../../src/bus/IdempotencyKeys.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as Redis from "../../src/bus/Redis.js"
import * as Http from "../../src/edge/Http.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import * as RunManager from "../../src/edge/RunManager.js"
import { WebhookHandlers } from "../../src/edge/WebhookHandlers.js"
import * as Webhooks from "../../src/edge/Webhooks.js"
import * as RecordedSignals from "../../src/store/RecordedSignals.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as Users from "../../src/store/Users.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { cleanUp, connection, downUrl, runRedis, uniquePrefix } from "../bus/redis.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { symbolsOf } from "../store/fixtures/workload.js"
import { createUsers, principals, stubAuthenticator } from "./fixtures.js"

const alice = principals["sk_alice"]
const bob = principals["sk_bob"]

const strategyBody = (name: string) =>
  Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: symbolsOf(2),
    allowShort: true,
    agents: [{ type: "tradingview", params: { validity: 50 } }],
    sizing: { mode: "percent_of_equity", value: 10 }
  })

/** A strategy of alice's and its webhook secret. */
const strategyWithSecret = (name: string) =>
  Effect.gen(function*() {
    const created = yield* Strategies.create(alice.userId, strategyBody(name))
    const rpc = yield* RpcTest.makeClient(WebhookRpcs, { flatten: true }).pipe(Effect.provide(clientKey("sk_alice")))
    const webhook = yield* rpc("webhooks.secret", { strategy: name })
    return { id: created.id, secret: webhook.secret!, path: webhook.path }
  })

/** A paper run of alice's strategy: 300 daily bars at 10 ms a bar, live for about 3 s. */
const paperRun = (strategy: string, speed = 8_640_000) =>
  Effect.flatMap(RunManager.RunManager, (manager) =>
    manager.start(alice, { strategy, mode: "paper", data: { _tag: "synthetic", bars: 300 }, speed }))

/** The run's status once it has ended (it is read every 20 ms, for at most a minute). */
const finished = (run: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 3_000; i++) {
      const status = (yield* Runs.get(run)).status
      if (status === "completed" || status === "failed" || status === "stopped") return status
      yield* Effect.sleep("20 millis")
    }
    return "still running"
  })

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly body: any
}

const post = (url: string, body: string | object, headers: Record<string, string> = {}) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
    const text = await response.text()
    let parsed: unknown = undefined
    try {
      parsed = JSON.parse(text)
    } catch {
      // left undefined: the test shows the text
    }
    return { status: response.status, headers: response.headers, text, body: parsed }
  })

/** A server with the webhook route only, on a free port, for the scope. */
const server = (options: Webhooks.Options = {}) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      Http.serve(Webhooks.route(options), { logRequests: false }).pipe(
        Layer.provideMerge(Http.listen({ port: 0, host: "127.0.0.1", shutdownGrace: 0 }))
      )
    )
    const base = yield* Effect.provide(Http.baseUrl, context)
    return { url: (strategy: string) => `${base}/v1/webhooks/tradingview/${encodeURIComponent(strategy)}` }
  })

const usersLayer = Layer.effectDiscard(Effect.orDie(createUsers))

const prefix = uniquePrefix("webhooks")
afterAll(() => cleanUp(prefix))

/** Repeats acknowledged so far by the idempotency keys or by the database (this process, every test). */
const answeredBy = (by: "keys" | "database") =>
  Effect.map(Metric.value(Webhooks.duplicates.pipe(Metric.tagged("answered_by", by))), (state) => state.count)

/** Keys that hold garbage for every key (a value left by something else). */
const mangled: IdempotencyKeys.IdempotencyKeysService = { ...IdempotencyKeys.memory(), get: () => Effect.succeed("{not json") }

describe("tickers", () => {
  it("name a symbol whole or after the exchange prefix; in any case when that names exactly one symbol", () => {
    const symbols = ["GLOBEX", "AAPL", "BTC:USD", "abc", "ABC"] as Array<Symbol>
    expect(Webhooks.symbolOf("NASDAQ:GLOBEX", symbols)).toBe("GLOBEX")
    expect(Webhooks.symbolOf("nasdaq:globex", symbols)).toBe("GLOBEX")
    expect(Webhooks.symbolOf("Aapl", symbols)).toBe("AAPL")
    expect(Webhooks.symbolOf("btc:usd", symbols)).toBe("BTC:USD")
    expect(Webhooks.symbolOf("X:abc", symbols)).toBe("abc")
    // Two symbols alike but for case: only an exact name chooses.
    expect(Webhooks.symbolOf("X:Abc", symbols)).toBeUndefined()
    expect(Webhooks.symbolOf("MSFT", symbols)).toBeUndefined()
  })
})

for (const backend of backends) {
  const services = Layer.mergeAll(WebhookHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(RunManager.layer),
    Layer.provideMerge(Layer.mergeAll(InProcessBus.layer, stubAuthenticator, usersLayer)),
    Layer.provideMerge(backend.store)
  )
  layer(services, { timeout: startTimeout, excludeTestServices: true })(`webhooks (${backend.name})`, (it) => {
    it.scoped("the secret: shown on the first ask only, rotated on request (the old one then refused); another user's strategy does not exist", () =>
      Effect.gen(function*() {
        const created = yield* Strategies.create(alice.userId, strategyBody("secret handling"))
        const rpc = yield* RpcTest.makeClient(WebhookRpcs, { flatten: true }).pipe(Effect.provide(clientKey("sk_alice")))
        const first = yield* rpc("webhooks.secret", { strategy: "secret handling" })
        expect(first.strategy).toBe(created.id)
        expect(first.path).toBe(`/v1/webhooks/tradingview/${created.id}`)
        expect(first.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/)
        expect(first.prefix).toBe(first.secret!.slice(0, 12))
        const again = yield* rpc("webhooks.secret", { strategy: created.id })
        expect(again).toMatchObject({ secret: null, prefix: first.prefix })
        // Only a hash is kept.
        const sql = yield* SqlClient.SqlClient
        const stored = yield* sql<{ secretHash: string }>`select secret_hash from webhook_secrets where strategy_id = ${created.id}`
        expect(JSON.stringify(stored)).not.toContain(first.secret!)

        const srv = yield* server()
        const alert = { ticker: "S0", action: "buy", price: 100 }
        // No paper run yet: past the secret, the 409.
        expect((yield* post(srv.url(created.id), { ...alert, secret: first.secret })).status).toBe(409)
        const rotated = yield* rpc("webhooks.rotate", { strategy: "secret handling" })
        expect(rotated.secret).toMatch(/^whsec_/)
        expect(rotated.secret).not.toBe(first.secret)
        const old = yield* post(srv.url(created.id), { ...alert, secret: first.secret })
        expect(old.status).toBe(401)
        expect((yield* post(srv.url(created.id), { ...alert, secret: rotated.secret })).status).toBe(409)

        const bobs = yield* RpcTest.makeClient(WebhookRpcs, { flatten: true }).pipe(Effect.provide(clientKey("sk_bob")))
        expect(yield* Effect.flip(bobs("webhooks.secret", { strategy: created.id }))).toMatchObject({ _tag: "StrategyNotFound" })
        expect(yield* Effect.flip(bobs("webhooks.rotate", { strategy: "secret handling" }))).toMatchObject({ _tag: "StrategyNotFound" })
      }))

    it.scoped("delivered to the live paper run: recorded, then the tradingview opinion; a repeat applied once; the run replays identically", () =>
      Effect.gen(function*() {
        const { id, secret } = yield* strategyWithSecret("tv paper")
        const srv = yield* server()
        const run = yield* paperRun("tv paper")
        const url = srv.url(id)
        const buy = { ticker: "NASDAQ:S0", action: "Buy", price: "101.25", strategy: "my pine", timeframe: "15", indicators: { rsi: 28 }, id: "alert-1", secret }
        const delivered = yield* post(url, buy)
        expect(delivered.status).toBe(202)
        expect(delivered.body).toEqual({ status: "delivered", duplicate: false, alert: "id:alert-1", runs: [run.id] })
        const repeat = yield* post(url, buy)
        expect(repeat.status).toBe(200)
        expect(repeat.body).toEqual({ status: "duplicate", duplicate: true, alert: "id:alert-1", runs: [run.id] })
        // Twins at the same moment: one is delivered, the others are repeats.
        const twins = yield* Effect.all(Array.from({ length: 5 }, () => post(url, { ...buy, id: "twin" })), { concurrency: "unbounded" })
        expect(twins.map((t) => t.status).sort()).toEqual([200, 200, 200, 200, 202])
        // Without an id, the body is the key: the same body twice is a repeat, another time is not.
        const plain = { ticker: "S1", action: "SELL", price: 50, time: "2024-01-01T00:00:00Z" }
        const viaHeader = yield* post(url, plain, { "x-swarm-secret": secret })
        expect(viaHeader.status).toBe(202)
        expect(viaHeader.body.alert).toMatch(/^sha256:[0-9a-f]{64}$/)
        const viaQuery = yield* post(`${url}?secret=${encodeURIComponent(secret)}`, plain)
        expect(viaQuery.body).toMatchObject({ duplicate: true, alert: viaHeader.body.alert })
        // A ticker the run does not trade names the field (and nothing is kept: a fix goes through).
        const elsewhere = yield* post(url, { ticker: "MSFT", action: "buy", price: 1, id: "alert-2", secret })
        expect(elsewhere.status).toBe(400)
        expect(elsewhere.body).toMatchObject({ error: "InvalidAlert", field: "ticker" })
        expect(elsewhere.text).not.toContain("MSFT")
        expect((yield* post(url, { ticker: "S1", action: "buy", price: 1, id: "alert-2", secret })).status).toBe(202)

        expect(yield* finished(run.id)).toBe("completed")
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ seq: number; tag: string; body: string }>`select seq, tag, body from run_events where run_id = ${run.id} order by seq`
        const events = rows.map((row) => ({ seq: row.seq, tag: row.tag, event: JSON.parse(row.body) }))
        const received = events.filter((e) => e.tag === "SignalReceived")
        expect(received.map((e) => e.event.signal.alertId)).toEqual(["id:alert-1", "id:twin", viaHeader.body.alert, "id:alert-2"])
        expect(received[0]!.event.signal).toMatchObject({
          source: "tradingview",
          symbol: "S0",
          ticker: "NASDAQ:S0",
          action: "buy",
          price: 101.25,
          strategy: "my pine",
          timeframe: "15",
          indicators: { rsi: 28 }
        })
        const opinion = events.find((e) => e.seq > received[0]!.seq && e.tag === "OpinionGiven")
        expect(opinion?.event.opinion).toMatchObject({ agent: "tradingview", symbol: "S0", direction: "long", ts: received[0]!.event.ts })
        expect(events.some((e) => e.tag === "OpinionGiven" && e.seq < received[0]!.seq)).toBe(false)

        // A paper run that took alerts is still a function of its recorded inputs.
        const done = yield* Runs.get(run.id)
        const replayed = yield* StoredRun.replay(run.id)
        expect(replayed.checksum).toBe(done.checksum)
        expect(replayed.events).toBe(events.length)

        // Its run over, the strategy has no paper run: a new alert is a 409; a repeat is still a repeat.
        expect((yield* post(url, { ...buy, id: "alert-3" })).status).toBe(409)
        expect((yield* post(url, buy)).body).toMatchObject({ duplicate: true })
      }), { timeout: 120_000 })

    it.scoped("a placeholder with no value (TradingView writes NaN): the alert is taken, the value left out and named in the answer; a required field is still refused", () =>
      Effect.gen(function*() {
        const { id, secret } = yield* strategyWithSecret("tv nan")
        const srv = yield* server()
        const run = yield* paperRun("tv nan", 864_000)
        const url = srv.url(id)
        const head = (n: string) => `{"secret":${JSON.stringify(secret)},"id":"${n}","ticker":"S0","action":"buy","price":101.5,"strategy":"NaN Infinity pine"`
        // The docs' template on a bar where plot_0 has no value: bare NaN, not JSON as it is.
        const bare = yield* post(url, `${head("bare")},"indicators":{"rsi":NaN,"atr":1.5,"z":-Infinity},"confidence":NaN}`)
        expect([bare.status, bare.body]).toEqual([202, {
          status: "delivered",
          duplicate: false,
          alert: "id:bare",
          runs: [run.id],
          ignored: ["confidence: NaN or null", "indicators.rsi: NaN or null", "indicators.z: NaN or null"]
        }])
        // Quoted, or null: the same.
        const quoted = yield* post(url, `${head("quoted")},"indicators":{"rsi":"NaN"},"confidence":"NaN"}`)
        expect(quoted.status).toBe(202)
        expect(quoted.body.ignored).toEqual(['confidence: "NaN"', 'indicators.rsi: "NaN"'])
        const nulls = yield* post(url, `${head("nulls")},"indicators":{"rsi":null},"confidence":null}`)
        expect(nulls.status).toBe(202)
        expect(nulls.body.ignored).toEqual(["confidence: NaN or null", "indicators.rsi: NaN or null"])
        // Nothing left out: no `ignored`.
        expect((yield* post(url, `${head("whole")},"indicators":{"rsi":28}}`)).body).not.toHaveProperty("ignored")
        // A required field without a value is still refused, by name; nothing kept.
        const noPrice = yield* post(url, `{"secret":${JSON.stringify(secret)},"id":"np","ticker":"S0","action":"buy","price":NaN}`)
        expect([noPrice.status, noPrice.body]).toMatchObject([400, { error: "InvalidAlert", field: "price" }])
        const noAction = yield* post(url, `{"secret":${JSON.stringify(secret)},"id":"na","ticker":"S0","action":NaN,"price":1}`)
        expect([noAction.status, noAction.body]).toMatchObject([400, { error: "InvalidAlert", field: "action" }])
        // Still not JSON for other reasons: the body.
        expect((yield* post(url, `${head("broken")},"indicators":{"rsi":NaNa}}`)).body).toMatchObject({ error: "InvalidAlert", field: "body" })

        // What the run took: the alerts without the values they did not have; strings untouched.
        const taken = Effect.map(RecordedSignals.read(run.id), (signals) => [...signals.values()].flat())
        for (let i = 0; i < 100 && (yield* taken).length < 4; i++) yield* Effect.sleep("100 millis")
        const signals = new Map((yield* taken).map((s) => [s.alertId, s]))
        expect(signals.get("id:bare")).toMatchObject({ price: 101.5, strategy: "NaN Infinity pine", indicators: { atr: 1.5 } })
        expect(signals.get("id:bare")).not.toHaveProperty("confidence")
        expect(signals.get("id:quoted")).not.toHaveProperty("indicators")
        expect(signals.get("id:nulls")).not.toHaveProperty("confidence")
        expect(signals.get("id:whole")?.indicators).toEqual({ rsi: 28 })
        expect(signals.has("id:np") || signals.has("id:na")).toBe(false)
        yield* Effect.flatMap(RunManager.RunManager, (manager) => manager.stop(alice, run.id))
      }), { timeout: 120_000 })

    it.scoped("a disabled user's webhook: 401 as a wrong secret, nothing applied; their paper run goes on; enabled again, it is taken", () =>
      Effect.gen(function*() {
        const name = "tv disabled owner"
        const created = yield* Strategies.create(bob.userId, strategyBody(name))
        const rpc = yield* RpcTest.makeClient(WebhookRpcs, { flatten: true }).pipe(Effect.provide(clientKey("sk_bob")))
        const secret = (yield* rpc("webhooks.secret", { strategy: name })).secret!
        const srv = yield* server()
        const manager = yield* RunManager.RunManager
        const run = yield* manager.start(bob, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 300 }, speed: 864_000 })
        const alert = (n: string) => ({ ticker: "S0", action: "buy", price: 100, id: n, secret })
        expect((yield* post(srv.url(created.id), alert("before"))).status).toBe(202)
        yield* Users.disable(bob.userId)
        const refused = yield* post(srv.url(created.id), alert("while-disabled"))
        expect([refused.status, refused.body]).toEqual([401, { error: "Unauthorized", reason: "unknown strategy or wrong webhook secret" }])
        const sql = yield* SqlClient.SqlClient
        expect(yield* sql`select 1 from webhook_alerts where strategy_id = ${created.id} and alert_key = 'id:while-disabled'`).toEqual([])
        expect((yield* Runs.get(run.id)).status).toBe("running")
        yield* Users.enable(bob.userId)
        expect((yield* post(srv.url(created.id), alert("after"))).status).toBe(202)
        yield* manager.stop(bob, run.id)
        const taken = [...(yield* RecordedSignals.read(run.id)).values()].flat().map((s) => s.alertId)
        expect(taken).not.toContain("id:while-disabled")
      }), { timeout: 120_000 })

    it.scoped("a claim the database refuses at its commit: 503 Unavailable, the alert not taken; the sender's retry is delivered once", () =>
      Effect.gen(function*() {
        const { id, secret } = yield* strategyWithSecret("tv commit refused")
        const srv = yield* server()
        const run = yield* paperRun("tv commit refused", 864_000)
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`create function refuse_refused() returns trigger language plpgsql as $$
          begin if new.alert_key like 'id:refused%' then raise exception 'refused at commit'; end if; return new; end $$`)
        yield* sql.unsafe(`create constraint trigger refuse_refused after update on webhook_alerts deferrable initially deferred
          for each row execute function refuse_refused()`)
        const alert = { ticker: "S0", action: "buy", price: 100, id: "refused-1", secret }
        const refused = yield* post(srv.url(id), alert)
        expect([refused.status, refused.body]).toEqual([503, { error: "Unavailable", reason: "the database is unavailable; retry later" }])
        yield* Effect.sleep("1 second")
        const taken = Effect.map(RecordedSignals.read(run.id), (signals) => [...signals.values()].flat().map((s) => s.alertId))
        expect(yield* taken).toEqual([])
        yield* sql.unsafe(`drop trigger refuse_refused on webhook_alerts`)
        const retried = yield* post(srv.url(id), alert)
        expect([retried.status, retried.body]).toEqual([202, { status: "delivered", duplicate: false, alert: "id:refused-1", runs: [run.id] }])
        for (let i = 0; i < 50 && (yield* taken).length === 0; i++) yield* Effect.sleep("100 millis")
        expect(yield* taken).toEqual(["id:refused-1"])
        yield* Effect.flatMap(RunManager.RunManager, (manager) => manager.stop(alice, run.id))
      }), { timeout: 120_000 })

    it.scoped("a repeat is answered from the idempotency keys with the first one's runs, without the database; keys that forgot it leave it to the database", () =>
      Effect.gen(function*() {
        const { id, secret } = yield* strategyWithSecret("tv remembered")
        const srv = yield* server()
        const run = yield* paperRun("tv remembered")
        const url = srv.url(id)
        const sql = yield* SqlClient.SqlClient
        const alert = { ticker: "S0", action: "buy", price: 100, id: "once", secret }
        expect(yield* post(url, alert)).toMatchObject({ status: 202, body: { status: "delivered", runs: [run.id] } })
        const byKeys = yield* answeredBy("keys")
        // The database forgets it: only the keys can tell a repeat now — and they answer as the first delivery did.
        yield* sql`delete from webhook_alerts where strategy_id = ${id}`
        const repeat = yield* post(url, alert)
        expect(repeat.status).toBe(200)
        expect(repeat.body).toEqual({ status: "duplicate", duplicate: true, alert: "id:once", runs: [run.id] })
        expect(yield* answeredBy("keys")).toBe(byKeys + 1)

        // Keys that never saw it (another process without Redis, or Redis flushed): the database answers, the same way.
        const other = yield* server()
        const again = { ...alert, id: "twice" }
        expect((yield* post(url, again)).status).toBe(202)
        const byDatabase = yield* answeredBy("database")
        const elsewhere = yield* post(other.url(id), again)
        expect(elsewhere.body).toEqual({ status: "duplicate", duplicate: true, alert: "id:twice", runs: [run.id] })
        expect(yield* answeredBy("database")).toBe(byDatabase + 1)
        // ...and from then on those keys remember it too.
        expect((yield* post(other.url(id), again)).body).toMatchObject({ duplicate: true, runs: [run.id] })
        expect(yield* answeredBy("keys")).toBe(byKeys + 2)
        // A mangled value in the keys is no answer: the database gives it.
        yield* Effect.provideService(server(), IdempotencyKeys.IdempotencyKeys, mangled).pipe(
          Effect.flatMap((third) => post(third.url(id), again)),
          Effect.map((answer) => expect(answer.body).toMatchObject({ duplicate: true, runs: [run.id] }))
        )

        // Each alert entered the run once.
        expect(yield* finished(run.id)).toBe("completed")
        const received = yield* sql<{ body: string }>`select body from run_events where run_id = ${run.id} and tag = 'SignalReceived' order by seq`
        expect(received.map((row) => JSON.parse(row.body).signal.alertId)).toEqual(["id:once", "id:twice"])
      }), { timeout: 120_000 })

    it.scoped.skipIf(!runRedis)("in Redis: a repeat reaching another server is answered there without the database; twins split across both apply once; Redis down falls back", () =>
      Effect.gen(function*() {
        const { id, secret } = yield* strategyWithSecret("tv shared keys")
        // Two servers, each with its own connection to the same Redis: two processes' keys.
        const serverOn = (url?: string) =>
          Effect.gen(function*() {
            const redis = yield* connection(prefix, url)
            const keys = yield* IdempotencyKeys.redis.pipe(Effect.provideService(Redis.Redis, redis))
            const srv = yield* Effect.provideService(server(), IdempotencyKeys.IdempotencyKeys, keys)
            return { ...srv, redis }
          })
        const a = yield* serverOn()
        const b = yield* serverOn()
        const run = yield* paperRun("tv shared keys")
        const sql = yield* SqlClient.SqlClient
        const alert = { ticker: "S0", action: "sell", price: 10, id: "shared", secret }
        expect((yield* post(a.url(id), alert)).status).toBe(202)
        // The database forgets it: what the other server answers comes from Redis.
        yield* sql`delete from webhook_alerts where strategy_id = ${id}`
        const byKeys = yield* answeredBy("keys")
        const repeat = yield* post(b.url(id), alert)
        expect(repeat.status).toBe(200)
        expect(repeat.body).toEqual({ status: "duplicate", duplicate: true, alert: "id:shared", runs: [run.id] })
        expect(yield* answeredBy("keys")).toBe(byKeys + 1)

        // Twins at the same moment, half to each server, the first still in flight: delivered once.
        const twins = yield* Effect.all(
          Array.from({ length: 8 }, (_, i) => post((i % 2 === 0 ? a : b).url(id), { ...alert, id: "split-twin" })),
          { concurrency: "unbounded" }
        )
        expect(twins.map((t) => t.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 202])
        for (const twin of twins) expect(twin.body.runs).toEqual([run.id])

        // Redis away: the database decides, and no request fails for it.
        const down = yield* serverOn(downUrl)
        const alone = { ...alert, id: "redis-down" }
        expect((yield* post(down.url(id), alone)).status).toBe(202)
        expect((yield* post(down.url(id), alone)).body).toMatchObject({ duplicate: true, runs: [run.id] })
        expect((yield* post(a.url(id), alone)).body).toMatchObject({ duplicate: true, runs: [run.id] })
        expect(down.redis.stats().commandFailures).toBeGreaterThan(0)

        expect(yield* finished(run.id)).toBe("completed")
        const received = yield* sql<{ body: string }>`select body from run_events where run_id = ${run.id} and tag = 'SignalReceived' order by seq`
        expect(received.map((row) => JSON.parse(row.body).signal.alertId)).toEqual(["id:shared", "id:split-twin", "id:redis-down"])
      }), { timeout: 120_000 })

    it.scoped("refusals: typed JSON naming the field, never a 500 or an echo, nothing kept", () =>
      Effect.gen(function*() {
        const { id, secret } = yield* strategyWithSecret("tv refusals")
        const srv = yield* server({ maxBodyBytes: 4_096 })
        const url = srv.url(id)
        const good = { ticker: "S0", action: "buy", price: 10 }

        // Who: a missing secret, a wrong one, an unknown strategy and a deleted one look alike past the first.
        const missing = yield* post(url, good)
        expect(missing.status).toBe(401)
        expect(missing.body).toMatchObject({ error: "Unauthorized" })
        const wrong = yield* post(url, { ...good, secret: `${secret.slice(0, -1)}x` })
        const unknown = yield* post(srv.url("str_doesnotexist"), { ...good, secret })
        expect([wrong.status, unknown.status]).toEqual([401, 401])
        // An id longer than any the router takes is no route at all (a JSON 404, as for any unknown path).
        const huge = yield* post(srv.url("x".repeat(500)), { ...good, secret })
        expect(huge.status).toBe(404)
        expect(huge.body).toMatchObject({ error: "NotFound" })
        expect(unknown.body).toEqual(wrong.body)
        expect(wrong.body).toEqual({ error: "Unauthorized", reason: "unknown strategy or wrong webhook secret" })
        expect((yield* post(url, { ...good, secret: 42 })).status).toBe(401)

        // What: malformed JSON, wrong types, a missing ticker, hostile strings.
        const cases: Array<[object | string, string]> = [
          ["{not json", "body"],
          ["", "body"],
          [{ ...good, secret, price: "ten" }, "price"],
          // Number() reads these; no price is written so.
          [{ ...good, secret, price: "0x10" }, "price"],
          [{ ...good, secret, price: "0b1" }, "price"],
          [{ ...good, secret, price: "Infinity" }, "price"],
          [{ ...good, secret, price: -3 }, "price"],
          [{ ...good, secret, price: null }, "price"],
          [{ ...good, secret, action: "hodl" }, "action"],
          [{ ...good, secret, action: ["buy"] }, "action"],
          [{ action: "buy", price: 1, secret }, "ticker"],
          [{ ...good, secret, ticker: "<script>alert(1)</script>" }, "ticker"],
          [{ ...good, secret, ticker: "S0\u0000; drop table runs" }, "ticker"],
          [{ ...good, secret, strategy: "line\nbreak\u0007" }, "strategy"],
          // An unpaired surrogate: valid JSON, not Unicode, and no database keeps it.
          [{ ...good, secret, strategy: "pine \ud800" }, "strategy"],
          [{ ...good, secret, extra: { "\udc00": 1 } }, "extra"],
          [{ ...good, secret, confidence: 7 }, "confidence"],
          [{ ...good, secret, indicators: { "__proto__": 1, "x y": 2 } }, "indicators"],
          [{ ...good, secret, indicators: { rsi: "high" } }, "indicators.rsi"],
          [{ ...good, secret, id: "a b" }, "id"],
          [[good, secret], "body"]
        ]
        for (const [body, field] of cases) {
          const answer = yield* post(url, body, Array.isArray(body) ? { "x-swarm-secret": secret } : {})
          const label = typeof body === "string" ? body : JSON.stringify(body)
          expect(answer.status, label).toBe(400)
          expect(answer.body, label).toMatchObject({ error: "InvalidAlert", field })
          expect(answer.text, label).not.toMatch(/<script>|drop table|at .*\.ts:\d+/)
        }
        const tower = `{"ticker":"S0","action":"buy","price":1,"secret":${JSON.stringify(secret)},"x":${"[".repeat(1_000)}${"]".repeat(1_000)}}`
        expect((yield* post(url, tower)).body).toMatchObject({ error: "InvalidAlert", field: "body", reason: expect.stringContaining("deeper") })

        // Too large: refused whole, before anything is read into an alert.
        const large = yield* post(url, { ...good, secret, pad: "x".repeat(5_000) })
        expect(large.status).toBe(413)
        expect(large.body).toMatchObject({ error: "AlertTooLarge", limitBytes: 4_096 })
        // Sent without a length (chunked), a little too large: the 413 arrives (the connection was reset).
        const chunked = yield* Effect.promise(() =>
          new Promise<string>((resolve) => {
            const request = NodeHttp.request(url, { method: "POST", headers: { "transfer-encoding": "chunked", "content-type": "application/json" } }, (response) => {
              let text = ""
              response.on("data", (data: Buffer) => (text += data.toString("utf8")))
              response.on("end", () => resolve(`${response.statusCode} ${text}`))
            })
            request.on("error", (error) => resolve((error as NodeJS.ErrnoException).code ?? error.message))
            const pad = "x".repeat(1_000)
            for (let i = 0; i < 20; i++) request.write(i === 0 ? `{"ticker":"S0","pad":"${pad}` : pad)
            request.end(`"}`)
          })
        )
        expect(chunked).toMatch(/^413 .*"AlertTooLarge"/)

        // No paper run: 409, and the key is not kept (the same alert goes through once a run is live).
        const keyed = { ...good, secret, id: "later" }
        const early = yield* post(url, keyed)
        expect(early.status).toBe(409)
        expect(early.body).toMatchObject({ error: "NoPaperRun", strategy: id })
        const sql = yield* SqlClient.SqlClient
        expect(yield* sql`select 1 from webhook_alerts where strategy_id = ${id}`).toEqual([])
        const run = yield* paperRun("tv refusals", 86_400)
        const late = yield* post(url, keyed)
        expect(late.status).toBe(202)
        expect(late.body.runs).toEqual([run.id])
        yield* Effect.flatMap(RunManager.RunManager, (manager) => manager.stop(alice, run.id))
      }), { timeout: 120_000 })

    it.scoped("a paper run whose strategy has no tradingview analyst: 409 NoTradingViewAnalyst naming the run, nothing kept; a run that has one takes it", () =>
      Effect.gen(function*() {
        const name = "tv deaf"
        const created = yield* Strategies.create(alice.userId, Schema.decodeUnknownSync(Strategy)({
          name,
          symbols: symbolsOf(2),
          agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }],
          sizing: { mode: "percent_of_equity", value: 10 }
        }))
        const rpc = yield* RpcTest.makeClient(WebhookRpcs, { flatten: true }).pipe(Effect.provide(clientKey("sk_alice")))
        const secret = (yield* rpc("webhooks.secret", { strategy: name })).secret!
        const srv = yield* server()
        const deaf = yield* paperRun(name, 86_400)
        const alert = { ticker: "S0", action: "buy", price: 100, secret, id: "to-a-deaf-run" }
        const refused = yield* post(srv.url(created.id), alert)
        expect(refused.status).toBe(409)
        expect(refused.body).toMatchObject({ error: "NoTradingViewAnalyst", strategy: created.id, runs: [deaf.id] })
        expect(refused.body.reason).toContain("no tradingview analyst")
        const sql = yield* SqlClient.SqlClient
        expect(yield* sql`select 1 from webhook_alerts where strategy_id = ${created.id}`).toEqual([])
        expect(yield* sql`select 1 from run_events where run_id = ${deaf.id} and tag = 'SignalReceived'`).toEqual([])

        // A new version with one, and a paper run of it alongside: the alert goes to that run only.
        yield* Strategies.update(alice.userId, name, strategyBody(name))
        const listening = yield* paperRun(name, 86_400)
        const taken = yield* post(srv.url(created.id), alert)
        expect(taken.status).toBe(202)
        expect(taken.body.runs).toEqual([listening.id])
        const manager = yield* RunManager.RunManager
        yield* manager.stop(alice, deaf.id)
        yield* manager.stop(alice, listening.id)
      }), { timeout: 120_000 })

    it.scoped("rate limit: past the strategy's burst, 429 with Retry-After; another strategy is not affected", () =>
      Effect.gen(function*() {
        const a = yield* strategyWithSecret("tv limited a")
        const b = yield* strategyWithSecret("tv limited b")
        const srv = yield* server({ rate: { capacity: 2, perSecond: 0.01 } })
        const alert = (secret: string, n: number) => ({ ticker: "S0", action: "buy", price: 1, id: `n${n}`, secret })
        // No run: each is a 409 — and each takes a token.
        expect((yield* post(srv.url(a.id), alert(a.secret, 1))).status).toBe(409)
        expect((yield* post(srv.url(a.id), alert(a.secret, 2))).status).toBe(409)
        const limited = yield* post(srv.url(a.id), alert(a.secret, 3))
        expect(limited.status).toBe(429)
        expect(limited.body).toMatchObject({ error: "RateLimited", strategy: a.id })
        expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
        expect(limited.body.retryAfterSeconds).toBe(Number(limited.headers.get("retry-after")))
        // Wrong secrets are refused before the bucket: they cannot drain it for the owner.
        expect((yield* post(srv.url(b.id), alert("whsec_wrong", 1))).status).toBe(401)
        expect((yield* post(srv.url(b.id), alert(b.secret, 1))).status).toBe(409)
      }))
  })
}
