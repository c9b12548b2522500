/**
 * The LLM answer cache in the database (src/llm/SqlAnswerCache.ts), on every back-end: a second
 * stored `swarm backtest` of the same strategy and data, in a new process, asks the model nothing
 * (its calls recorded as cache hits), while `--no-store` keeps the process's memory alone; nor does a
 * restarted server without Redis; an
 * expired row is a miss; a database that fails or stalls is a miss and the model is asked, logged
 * once; the table is swept and capped; a row read is kept in memory in front.
 */
import { SqlClient } from "@effect/sql"
import { afterAll, expect, layer } from "@effect/vitest"
import { Clock, ConfigProvider, Context, Deferred, Effect, Fiber, Layer, Logger, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { LlmCall } from "../../schemas/Llm.js"
import { Strategy } from "../../schemas/Strategy.js"
import { type CachedAnswer, keyOf, MemoryCache } from "../../src/llm/AnswerCache.js"
import * as Server from "../../src/edge/Server.js"
import * as LlmRuntime from "../../src/llm/LlmRuntime.js"
import * as Ollama from "../../src/llm/Ollama.js"
import * as SqlAnswerCache from "../../src/llm/SqlAnswerCache.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import type * as Database from "../../src/store/Database.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { swarm } from "../cli/harness.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import * as FakeOllama from "./FakeOllama.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const data = Path.join(root, "data")
const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-sql-cache-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/**
 * ACME's first 250 bars alone, for the stored backtests of an LLM analyst: every bar past its first
 * ten may be a model call (217 of them, more than the 100 the test asks for), and half of data/'s 500
 * halves what the test's four backtests and their thousands of calls take (as in cli/Store.test.ts).
 */
const llmData = Path.join(tmp, "llm-data")
fs.mkdirSync(llmData)
fs.writeFileSync(Path.join(llmData, "ACME.csv"), fs.readFileSync(Path.join(data, "ACME.csv"), "utf8").split("\n").slice(0, 251).join("\n") + "\n")

const judgement = (direction: string) => JSON.stringify({ direction, confidence: 0.8, rationale: `the brief says ${direction}` })

/** The test's database as a store layer the command opens without owning it. */
const store = Effect.map(Effect.context<Database.Database>(), (context) => Layer.succeedContext(context))

/** A new process's language models: the fake Ollama, an empty in-memory cache. */
const runtimeOf = (fake: FakeOllama.FakeOllama) => Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(Ollama.make({ host: fake.url })))

/** The LlmCalled events of a stored run, from its recorded events. */
const callsOf = (run: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ body: string }>`select body from run_events where run_id = ${run} and tag = 'LlmCalled' order by seq`
    return rows.map((row) => (JSON.parse(row.body) as { call: LlmCall }).call)
  }).pipe(Effect.orDie)

const rowCount = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`select count(*)::int as n from llm_answers`).pipe(
  Effect.map((rows) => rows[0]!.n),
  Effect.orDie
)

const emptied = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`delete from llm_answers`).pipe(Effect.orDie)

const answer = (content: string): CachedAnswer => ({ content, toolCalls: [], tokensIn: 10, tokensOut: 2 })

// A small in-process backtest with an LLM analyst, for the failure tests.
const symbols = ["AAA"] as const
const BARS = 40
const ROUNDS = BARS - 33
const strategy = Schema.decodeUnknownSync(Strategy)({
  name: "sql cache",
  symbols,
  agents: [{ type: "llm_analyst", params: { model: "qwen2.5:7b" } }],
  llm: { cacheTtlSeconds: 60, retries: 0 }
})
const backtest = (llm: Backtest.LlmOptions) =>
  Effect.gen(function*() {
    const calls: Array<LlmCall> = []
    const result = yield* Backtest.run({
      strategy,
      feed: Feed.synthetic({ ...Synthetic.defaults, seed: 5, symbols: [...symbols] as never, bars: BARS }),
      llm,
      onEvent: (event) => void (event._tag === "LlmCalled" && calls.push(event.call))
    })
    return { result, calls }
  })

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`the LLM answer cache in the database (${backend.name})`, (it) => {
    it.scoped("a second stored backtest in a new process makes no model call: its calls are cache hits; --no-store asks again", () =>
      Effect.gen(function*() {
        yield* emptied
        const fake = yield* FakeOllama.start(() => ({ content: judgement("long"), tokensIn: 100, tokensOut: 10 }))
        const file = Path.join(tmp, `twice-${backend.name}.json`)
        fs.writeFileSync(file, JSON.stringify({ name: "Cached twice", symbols: ["ACME"], agents: [{ type: "llm_analyst", params: { bars: 10 } }] }))
        const live = Clock.make()
        const run = (llm: LlmRuntime.LlmRuntime["Type"], ...extra: Array<string>) =>
          Effect.gen(function*() {
            const ran = yield* Effect.withClock(swarm(["backtest", "--data", llmData, "--strategy", file, "--json", ...extra], { store: yield* store, llm }), live)
            expect(ran.code, ran.stderr).toBe(0)
            return JSON.parse(ran.stdout) as { run: string; checksum: string; counts: { orders: number } }
          })

        const firstRuntime = yield* runtimeOf(fake)
        const first = yield* run(firstRuntime)
        const made = fake.calls()
        expect(made).toBeGreaterThan(100)
        const firstCalls = yield* callsOf(first.run)
        expect(firstCalls.every((c) => c.cache === "miss" && c.outcome === "ok")).toBe(true)
        expect(yield* rowCount).toBe(made)
        expect(yield* firstRuntime.cache.stats).toMatchObject({ hits: 0, misses: made })

        // Another process: its memory is empty, the database is not.
        const secondRuntime = yield* runtimeOf(fake)
        const second = yield* run(secondRuntime)
        expect(fake.calls()).toBe(made)
        const secondCalls = yield* callsOf(second.run)
        expect(secondCalls).toHaveLength(firstCalls.length)
        expect(secondCalls.every((c) => c.cache === "hit" && c.tokensIn === 0 && c.attempts === 0)).toBe(true)
        expect(secondCalls.map((c) => c.answer)).toEqual(firstCalls.map((c) => c.answer))
        expect(second.counts.orders).toBe(first.counts.orders)
        // Counted as hits (what /health shows), none a miss.
        expect(yield* secondRuntime.cache.stats).toMatchObject({ hits: made, misses: 0 })

        // A third, with the same runtime: answered from its memory, as before.
        const third = yield* run(secondRuntime)
        expect(fake.calls()).toBe(made)
        expect((yield* callsOf(third.run)).every((c) => c.cache === "hit")).toBe(true)

        // --no-store opens no database: the new process's memory alone, every call made again.
        const noStore = yield* runtimeOf(fake)
        const ran = yield* Effect.withClock(swarm(["backtest", "--no-store", "--data", llmData, "--strategy", file, "--json"], { llm: noStore }), live)
        expect(ran.code, ran.stderr).toBe(0)
        expect(fake.calls()).toBe(2 * made)
        expect(yield* rowCount).toBe(made)
      }), { timeout: 120_000 }) // four backtests of 250 bars: 5 s alone, 15 s and more on a loaded machine

    it.scoped("the server without Redis keeps answers in the database: after a restart, a run asks the model nothing it answered", () =>
      Effect.gen(function*() {
        yield* emptied
        const fake = yield* FakeOllama.start(() => ({ content: judgement("long"), tokensIn: 100, tokensOut: 10 }))
        // One server process's services, built, used for one backtest and shut down. Its own layer
        // value each time: a layer built twice from one value is memoized, its memory shared.
        const serve = Effect.gen(function*() {
          const llm = LlmRuntime.layerWith(Ollama.make({ host: fake.url }))
          const context = yield* Layer.build(Server.services(yield* store, llm)).pipe(Effect.orDie)
          const runtime = Context.get(context, LlmRuntime.LlmRuntime)
          expect(runtime.cache.tiered).toBe(true)
          const { calls } = yield* Effect.flatMap(LlmRuntime.runOptions(), backtest).pipe(Effect.provide(context))
          return { calls, stats: yield* runtime.cache.stats }
          // A server without Redis, whatever REDIS_URL the tests run with.
        }).pipe(Effect.scoped, Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
        const first = yield* serve
        expect(fake.calls()).toBe(ROUNDS)
        expect(first.stats).toMatchObject({ hits: 0, misses: ROUNDS })
        const restarted = yield* serve
        expect(fake.calls()).toBe(ROUNDS)
        expect(restarted.calls.every((c) => c.cache === "hit")).toBe(true)
        // What /health shows: the table's answers counted as hits.
        expect(restarted.stats).toMatchObject({ hits: ROUNDS, misses: 0 })
      }))

    it.effect("an expired row is a miss, and the model is asked; a live one is a hit and is kept in memory in front", () =>
      Effect.gen(function*() {
        yield* emptied
        let now = 1_000_000
        const writer = yield* SqlAnswerCache.make(new MemoryCache(100, () => now), { now: () => now })
        const key = keyOf("ollama:qwen2.5:7b", "abc", "AAA 2024-01-02..2024-03-01")
        yield* writer.set(key, answer("kept"), 60_000)
        yield* writer.set(keyOf("ollama:qwen2.5:7b", "def", "AAA"), answer("brief"), 1_000)
        expect(yield* rowCount).toBe(2)

        // Another process, 30 s later: one row live, the other expired.
        now += 30_000
        const reader = yield* SqlAnswerCache.make(new MemoryCache(100, () => now), { now: () => now })
        expect(yield* reader.get(keyOf("ollama:qwen2.5:7b", "def", "AAA"))).toBeUndefined()
        expect(yield* reader.get(key)).toEqual(answer("kept"))
        expect(yield* reader.stats).toEqual({ hits: 1, misses: 1, entries: 1 })
        // Made at +30 s, the reader swept the expired row.
        expect(yield* rowCount).toBe(1)
        // In memory in front, until the row's own expiry: no database read for it (the table is gone).
        const sql = yield* SqlClient.SqlClient
        yield* sql`alter table llm_answers rename to llm_answers_away`.pipe(Effect.orDie)
        expect(reader.memory?.peek(key)).toEqual(answer("kept"))
        expect(yield* reader.get(key)).toEqual(answer("kept"))
        now += 30_001
        expect(yield* reader.get(key)).toBeUndefined()
        yield* sql`alter table llm_answers_away rename to llm_answers`.pipe(Effect.orDie)
        // Past its expiry in the table too.
        const later = yield* SqlAnswerCache.make(new MemoryCache(100, () => now), { now: () => now })
        expect(yield* later.get(key)).toBeUndefined()
        expect(yield* rowCount).toBe(0)
      }))

    it.scoped("through a run: an expired entry is a miss and the call is made; a live one answers", () =>
      Effect.gen(function*() {
        yield* emptied
        const fake = yield* FakeOllama.start(() => ({ content: judgement("short"), tokensIn: 100, tokensOut: 10 }))
        const model = Ollama.make({ host: fake.url })
        let now = Date.now()
        const fresh = () => SqlAnswerCache.make(new MemoryCache(50_000, () => now), { now: () => now })
        const first = yield* backtest({ model, cache: yield* fresh() })
        expect(fake.calls()).toBe(ROUNDS)
        const live = yield* backtest({ model, cache: yield* fresh() })
        expect(fake.calls()).toBe(ROUNDS)
        expect(live.calls.every((c) => c.cache === "hit")).toBe(true)
        expect(live.result.checksum).not.toBe(first.result.checksum)
        // Past the strategy's cacheTtlSeconds (60 s): every call made again, recorded as misses.
        now += 61_000
        const expired = yield* backtest({ model, cache: yield* fresh() })
        expect(fake.calls()).toBe(2 * ROUNDS)
        expect(expired.calls.every((c) => c.cache === "miss" && c.outcome === "ok")).toBe(true)
      }))

    it.scoped("a database that fails: every read a miss, the model asked, the run completed; logged once", () =>
      Effect.gen(function*() {
        yield* emptied
        const fake = yield* FakeOllama.start(() => ({ content: judgement("long"), tokensIn: 100, tokensOut: 10 }))
        const model = Ollama.make({ host: fake.url })
        const logged: Array<string> = []
        const logger = Logger.add(Logger.make(({ message }) => void logged.push(String(message))))
        const cache = yield* SqlAnswerCache.make(new MemoryCache())
        // A first run fills the table; then it is gone, and a new process reads it.
        yield* backtest({ model, cache })
        expect(fake.calls()).toBe(ROUNDS)
        const sql = yield* SqlClient.SqlClient
        const reader = yield* SqlAnswerCache.make(new MemoryCache())
        yield* sql`alter table llm_answers rename to llm_answers_away`.pipe(Effect.orDie)
        const { calls, result } = yield* backtest({ model, cache: reader }).pipe(Effect.provide(logger))
        yield* sql`alter table llm_answers_away rename to llm_answers`.pipe(Effect.orDie)
        expect(result.status).toBe("completed")
        expect(fake.calls()).toBe(2 * ROUNDS)
        expect(calls.every((c) => c.cache === "miss" && c.outcome === "ok")).toBe(true)
        expect(yield* reader.stats).toMatchObject({ hits: 0, misses: ROUNDS })
        // Reads and writes failed all along: said once.
        expect(logged.filter((m) => m.includes("LLM answer cache"))).toHaveLength(1)
        expect(logged.find((m) => m.includes("LLM answer cache"))).toContain("the model is asked instead")
      }))

    it.effect("a database that stalls: a read is a miss after waitMillis, a write is dropped; neither waits longer", () =>
      Effect.gen(function*() {
        yield* emptied
        const sql = yield* SqlClient.SqlClient
        const cache = yield* SqlAnswerCache.make(new MemoryCache(), { waitMillis: 100 })
        const key = keyOf("ollama:m", "h", "w")
        yield* cache.set(key, answer("before"), 60_000)
        // Another connection holds the table (and, on the embedded back-end, the only connection).
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* sql.withTransaction(
          Effect.andThen(sql`lock table llm_answers in access exclusive mode`, Effect.andThen(Deferred.succeed(locked, undefined), Deferred.await(release)))
        ).pipe(Effect.orDie, Effect.fork)
        yield* Deferred.await(locked)
        const reader = new MemoryCache()
        const started = Date.now()
        const stalled = yield* SqlAnswerCache.make(reader, { waitMillis: 100 })
        expect(yield* stalled.get(key)).toBeUndefined()
        yield* stalled.set(keyOf("ollama:m", "h2", "w"), answer("during"), 60_000)
        // The sweep at start, the read and the write: each gave up at 100 ms.
        expect(Date.now() - started).toBeLessThan(3_000)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        // A write given up on that the database went on with would land once the table is free: give
        // it the time (on Postgres, a query given up on is not cancelled from here; before the
        // server-side timeout it landed within this second, and in the next test's table).
        yield* Effect.sleep(1_000)
        // The write was dropped (the row is not there), but the answer stayed in memory.
        const rows = yield* sql<{ n: number }>`select count(*)::int as n from llm_answers`.pipe(Effect.orDie)
        expect(rows[0]!.n).toBe(1)
        expect(reader.peek(keyOf("ollama:m", "h2", "w"))).toEqual(answer("during"))
      }))

    it.effect("an answer and a key text columns cannot hold (U+0000, a lone surrogate) come back exactly as they went in", () =>
      Effect.gen(function*() {
        yield* emptied
        const key = keyOf("ollama:m\u0000x", "h", "AAA \ud800 window")
        const odd: CachedAnswer = { content: "{\"rationale\":\"a\u0000b\ud800c\"}", toolCalls: [{ name: "t\u0000", arguments: { "k\ud800": "v\u0000" } }], tokensIn: 3, tokensOut: 4 }
        yield* (yield* SqlAnswerCache.make(new MemoryCache())).set(key, odd, 60_000)
        expect(yield* rowCount).toBe(1)
        expect(yield* (yield* SqlAnswerCache.make(new MemoryCache())).get(key)).toEqual(odd)
      }))

    it.effect("bounded: past maxRows the rows that expire soonest go; expired rows are swept at start", () =>
      Effect.gen(function*() {
        yield* emptied
        let now = 5_000_000
        const cache = yield* SqlAnswerCache.make(new MemoryCache(100, () => now), { now: () => now, maxRows: 3, sweepEvery: 1 })
        for (let i = 1; i <= 5; i++) yield* cache.set(keyOf("ollama:m", `h${i}`, "w"), answer(`a${i}`), i * 10_000)
        const sql = yield* SqlClient.SqlClient
        const kept = yield* sql<{ promptHash: string }>`select prompt_hash from llm_answers order by expires_at`.pipe(Effect.orDie)
        expect(kept.map((r) => r.promptHash)).toEqual(["h3", "h4", "h5"])
        now += 35_000
        yield* SqlAnswerCache.make(new MemoryCache(100, () => now), { now: () => now })
        const left = yield* sql<{ promptHash: string }>`select prompt_hash from llm_answers`.pipe(Effect.orDie)
        expect(left.map((r) => r.promptHash).sort()).toEqual(["h4", "h5"])
      }))
  })
}

