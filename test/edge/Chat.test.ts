/**
 * Chat with the system agent through the whole server on a real port (Server.layer, real API
 * keys): an answer streamed to an RPC client over HTTP — its chunks in order, concatenating to the
 * recorded message — and the same chunks live to an SSE watcher of the run; tool calling against a
 * fake Ollama; the offline answer from the tools; a suggested rule applied (a new, audited strategy
 * version the next run uses); another user's run and a missing one answered alike on every
 * procedure and on SSE; bad payloads as typed errors; the chat kept across a server restart; a
 * stream whose key is revoked or whose user is disabled, SSE or `chat.send`, ends with
 * `Unauthorized` while the others go on, and an admin's of another's run, once demoted, with
 * `RunNotFound` as a request for the run is answered. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Schema, Stream } from "effect"
import * as Tools from "../../agents/system/Tools.js"
import * as TradeAnalysis from "../../agents/system/TradeAnalysis.js"
import type { ChatChunk } from "../../schemas/Chat.js"
import { ChatChunk as ChatChunkSchema } from "../../schemas/Chat.js"
import { Unauthorized } from "../../schemas/Auth.js"
import { RunNotFound } from "../../schemas/Rpc.js"
import * as ChatView from "../../src/cli/ChatView.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as Users from "../../src/store/Users.js"
import { TRADES } from "../agents/system/fixtures.js"
import * as FakeOllama from "../llm/FakeOllama.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { finishedRun, newUser, offline, quickRecheck, serve } from "./chatServer.js"
import { bearer, connect, eventually, open, rpcClient, type SseItem } from "./fixtures.js"

// ---------------------------------------------------------------------------------------------
// The server, its users, a run

const user = (role: "user" | "admin" = "user") => newUser("chatter", role)

/** A finished run of `owner` whose closed trades are `TRADES` (fixtures.ts `seedRun`), and its reference. */
const seedRun = (owner: string) => finishedRun(owner, "edge chat")

// ---------------------------------------------------------------------------------------------
// Reading answers

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

const textOf = (chunks: ReadonlyArray<ChatChunk>) => chunks.flatMap((c) => (c._tag === "Token" ? [c.text] : [])).join("")

const chatUrl = (base: string, run: string, query = "") => `${base}/v1/runs/${encodeURIComponent(run)}/chat${query}`

type SseEvent = Extract<SseItem, { type: "event" }>

const encodeChunk = Schema.encodeSync(ChatChunkSchema)

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`chat over the edge (${backend.name})`, (it) => {
    it.scoped("an answer streams to the RPC client in order, live to an SSE watcher alike, and is recorded", () =>
      Effect.gen(function*() {
        const final = "MSFT lost 300.00 over 6 trades; AAPL made 600.00. Stop trading MSFT."
        const fake = yield* FakeOllama.start((request) =>
          (request.messages ?? []).some((m) => m.role === "tool")
            ? { chunks: FakeOllama.pieces(final), chunkDelayMillis: 5 }
            : { content: "", toolCalls: [{ name: "analyse_trades", arguments: { symbol: "MSFT" } }] }
        )
        const base = yield* serve({ OLLAMA_HOST: fake.url })
        const alice = yield* user()
        const run = yield* seedRun(alice.id)

        // The watcher first: it sees what is asked from now on.
        const watcher = yield* connect(chatUrl(base, run.id, `?token=${alice.key}`))
        expect(watcher.headers.get("content-type")).toContain("text/event-stream")
        expect(yield* Effect.promise(() => watcher.reader.next())).toEqual({ type: "retry", millis: 1_000 })

        const client = yield* rpcClient(base, alice.key)
        const chunks = yield* collect(client("chat.send", { run: run.ref, message: "Why did MSFT lose?" }))
        expect(chunks.map((c) => c._tag)).toEqual(["Asked", "ToolUsed", ...FakeOllama.pieces(final).map(() => "Token"), "Done"])
        expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i))
        expect(textOf(chunks)).toBe(final)
        expect(chunks[1]).toMatchObject({ tool: "analyse_trades", ok: true, arguments: { symbol: "MSFT" } })
        // The tool ran and its result went back to the model.
        const result = JSON.parse((fake.requests[1]!.messages ?? []).find((m) => m.role === "tool")!.content) as TradeAnalysis.TradeAnalysis
        expect(result.overall).toMatchObject({ trades: 6, losses: 6, totalPnl: -300_000_000 })

        // The SSE watcher got the same chunks, as they were produced.
        const seen = yield* Effect.promise(() => watcher.reader.events((e) => e.event === "done"))
        expect(seen.map((e) => e.event)).toEqual(["question", "tool", ...FakeOllama.pieces(final).map(() => "token"), "done"])
        expect(seen.map((e) => e.id)).toEqual(chunks.map((c) => `${c.question}.${c.index}`))
        expect(seen.map((e: SseEvent) => JSON.parse(e.data))).toEqual(chunks.map((c) => encodeChunk(c)))

        // Recorded: the answer is the message `Done` names, its text the tokens'.
        const done = chunks.at(-1)!
        const history = yield* client("chat.history", { run: run.id })
        expect(history.messages.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
        expect(history.messages.at(-1)).toMatchObject({ content: final, backend: "ollama", error: null })
        expect(done._tag === "Done" && done.message).toBe(history.messages.at(-1)!.seq)
      }), { timeout: 90_000 })

    it.scoped("offline: losing trades are answered from analyse_trades in sentences; the chat outlives a server restart", () =>
      Effect.gen(function*() {
        const alice = yield* user()
        const run = yield* seedRun(alice.id)
        const expected = TradeAnalysis.describeTradeAnalysis(TradeAnalysis.analyseTrades(TRADES))

        const first = yield* Effect.scoped(Effect.gen(function*() {
          const base = yield* serve(offline)
          const client = yield* rpcClient(base, alice.key)
          return yield* collect(client("chat.send", { run: run.id, message: "Which trades lost money?" }))
        }))
        expect(first.filter((c) => c._tag === "ToolUsed").map((c) => c._tag === "ToolUsed" && c.tool)).toEqual(["analyse_trades"])
        expect(textOf(first)).toBe(expected)
        expect(first.at(-1)).toMatchObject({ _tag: "Done", backend: "offline" })

        // Another server on the same database: the chat is there, and goes on where it was.
        const base = yield* serve(offline)
        const client = yield* rpcClient(base, alice.key)
        const history = yield* client("chat.history", { run: run.ref })
        expect(history.messages.map((m) => [m.role, m.role === "assistant" && m.toolCalls === null ? m.content : ""])).toEqual([
          ["user", ""],
          ["assistant", ""],
          ["tool", ""],
          ["assistant", expected]
        ])
        expect(history.messages[0]!.content).toBe("Which trades lost money?")
        const next = yield* collect(client("chat.send", { run: run.id, message: "What is the Sharpe ratio?" }))
        expect(next[0]).toMatchObject({ _tag: "Asked", question: 5, content: "What is the Sharpe ratio?" })
        expect(next.at(-1)!._tag).toBe("Done")
        expect((yield* client("chat.history", { run: run.id, limit: 2 })).messages.map((m) => m.seq)).toEqual([7, 8])
        // Paging back: the latest `limit` of those below `before`, oldest first; none below 1.
        const seqs = (payload: { readonly limit?: number; readonly before?: number }) =>
          client("chat.history", { run: run.id, ...payload }).pipe(Effect.map((h) => h.messages.map((m) => m.seq)))
        expect(yield* seqs({ limit: 2, before: 7 })).toEqual([5, 6])
        expect(yield* seqs({ before: 4 })).toEqual([1, 2, 3])
        expect(yield* seqs({ limit: 2, before: 2 })).toEqual([1])
        expect(yield* seqs({ before: 1 })).toEqual([])
        expect(yield* seqs({ before: 1_000 })).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      }), { timeout: 90_000 })

    it.scoped("a suggested rule applied over RPC makes a new, audited strategy version, which the next run uses", () =>
      Effect.gen(function*() {
        const base = yield* serve(offline)
        const alice = yield* user()
        const run = yield* seedRun(alice.id)
        const client = yield* rpcClient(base, alice.key)

        const suggested = yield* client("chat.suggestions", { run: run.id })
        expect(suggested).toMatchObject({ run: run.id, strategy: run.strategyId, strategyVersion: 1, minTrades: 5 })
        const stop = suggested.suggestions.find((s) => s.pattern.kind === "symbol")!
        expect(stop.rule).toMatchObject({ id: "suggested-stop-msft", kind: "max_orders_per_day", allowSymbols: ["MSFT"] })
        expect(stop.id).toMatch(/^suggested-stop-msft\.5\.[0-9a-f]{8}$/)
        expect(stop.evidence).toMatchObject({ trades: 6, losingTrades: 6, pnl: -300_000_000 })
        // The ids are stable: what is listed is what the chat suggests.
        expect(stop.id).toBe(Tools.suggestionId(stop.rule, 5))

        const applied = yield* client("chat.applyRule", { run: run.ref, suggestion: stop.id })
        expect(applied).toMatchObject({ id: run.strategyId, name: run.strategy.name, version: 2 })
        expect(applied.strategy.rules.map((r) => r.id)).toEqual(["suggested-stop-msft"])
        const latest = yield* client("strategies.get", { strategy: run.strategy.name })
        expect(latest.version).toBe(2)
        expect(latest.strategy.rules).toEqual(applied.strategy.rules)

        // Audited as every version is: the chain holds it and verifies.
        const sql = yield* SqlClient.SqlClient
        const entries = yield* Effect.orDie(sql<{ position: number; kind: string; entry: string }>`
          select position, kind, entry from audit_log where stream = ${`strategy:${run.strategyId}`} order by position`)
        expect(entries.map((e) => [e.position, e.kind])).toEqual([[1, "StrategyVersionSaved"], [2, "StrategyVersionSaved"]])
        expect((JSON.parse(entries[1]!.entry) as { body: { rules: Array<{ id: string }> } }).body.rules.map((r) => r.id)).toEqual([
          "suggested-stop-msft"
        ])
        expect((yield* Effect.orDie(Audit.verifyStrategy(run.strategyId))).ok).toBe(true)

        // It is not suggested again; applying it again is refused, typed.
        const again = yield* client("chat.suggestions", { run: run.id })
        expect(again.strategyVersion).toBe(2)
        expect(again.suggestions.map((s) => s.rule.id)).not.toContain("suggested-stop-msft")
        expect((yield* Effect.flip(client("chat.applyRule", { run: run.id, suggestion: stop.id })))._tag).toBe("SuggestionNotFound")

        // The next run of the strategy runs the new version.
        const next = yield* client("runs.start", { strategy: run.strategy.name, mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
        expect(next.strategyVersion).toBe(2)
        const events = yield* collect(client("runs.events", { run: next.id }))
        expect(events.at(-1)!.tag).toBe("RunCompleted")
      }), { timeout: 90_000 })

    it.scoped("an admin's apply to another user's run is audited as the admin's; every apply's entry names its suggestion", () =>
      Effect.gen(function*() {
        const base = yield* serve(offline)
        const alice = yield* user()
        const root = yield* user("admin")
        const run = yield* seedRun(alice.id)
        const sql = yield* SqlClient.SqlClient
        const entriesOf = Effect.orDie(sql<{ entry: string }>`
          select entry from audit_log where stream = ${`strategy:${run.strategyId}`} order by position`)

        // The owner's apply says which suggestion of which run it came from, and no `by`.
        const owner = yield* rpcClient(base, alice.key)
        const first = (yield* owner("chat.suggestions", { run: run.id })).suggestions[0]!
        yield* owner("chat.applyRule", { run: run.id, suggestion: first.id })
        const own = JSON.parse((yield* entriesOf)[1]!.entry) as Record<string, unknown>
        expect(own).toMatchObject({ owner: alice.id, suggestion: { run: run.id, id: first.id } })
        expect(own).not.toHaveProperty("by")

        // An admin's apply to alice's run: a version of alice's strategy, saying the admin made it.
        const admin = yield* rpcClient(base, root.key)
        const second = (yield* admin("chat.suggestions", { run: run.id })).suggestions[0]!
        const applied = yield* admin("chat.applyRule", { run: run.id, suggestion: second.id })
        expect(applied).toMatchObject({ id: run.strategyId, version: 3 })
        const entries = yield* entriesOf
        expect(entries).toHaveLength(3)
        expect(JSON.parse(entries[2]!.entry)).toMatchObject({ strategy: run.strategyId, version: 3, owner: alice.id, by: root.id, suggestion: { run: run.id, id: second.id } })
        expect((yield* Effect.orDie(Audit.verifyStrategy(run.strategyId))).ok).toBe(true)
      }), { timeout: 90_000 })

    it.scoped("a deleted strategy's suggestions say none of them can be applied: in the answer, the CLI's table and the chat's tool", () =>
      Effect.gen(function*() {
        const base = yield* serve(offline)
        const alice = yield* user()
        const run = yield* seedRun(alice.id)
        const owner = yield* rpcClient(base, alice.key)
        // Deleted, the strategy has no next version: the suggestions (for the version the run ran) say so.
        yield* owner("strategies.delete", { strategy: run.strategyId })
        const orphaned = yield* owner("chat.suggestions", { run: run.id })
        expect(orphaned).toMatchObject({ strategyVersion: 1, strategyDeleted: true })
        expect(orphaned.suggestions.length).toBeGreaterThan(0)
        const shown = ChatView.suggestionsText(orphaned).trimEnd().split("\n")
        expect(shown[0]).toContain(`(strategy ${run.strategyId} v1, deleted;`)
        expect(shown.at(-1)).toBe("the run's strategy was deleted: none can be applied (put one in another strategy with swarm rules put)")
        // Applying one is refused naming the deleted strategy as it was called (the asker never typed its id), not
        // as a "no strategy str_…" they cannot place; so is an id the run does not suggest (no suggestion can be applied).
        const deleted = { _tag: "StrategyNotFound", strategy: run.strategyId, deleted: { name: run.name } }
        const refused = yield* Effect.flip(owner("chat.applyRule", { run: run.id, suggestion: orphaned.suggestions[0]!.id }))
        expect(refused).toMatchObject(deleted)
        expect(refused.message).toBe(`strategy ${run.name} (${run.strategyId}) was deleted`)
        expect(yield* Effect.flip(owner("chat.applyRule", { run: run.id, suggestion: "nope.5.00000000" }))).toMatchObject(deleted)
        // The chat's tool says so too, rather than how to apply one.
        const told = yield* Effect.orDie(Effect.flatMap(Runs.get(run.id), (record) => Tools.run({ tool: "suggest_rules", args: {} }, record)))
        expect(told.result).toMatchObject({ strategyVersion: null, strategyDeleted: true })
        expect(told.sentences).toMatch(/ The run's strategy was deleted, so none of them can be applied\.$/)
        expect(told.sentences).not.toContain("chat.applyRule")
        // A strategy there says nothing of it.
        expect(yield* owner("chat.suggestions", { run: (yield* seedRun(alice.id)).id })).not.toHaveProperty("strategyDeleted")
      }), { timeout: 90_000 })

    it.scoped("another user's run is answered as a missing one: every chat procedure, and the SSE endpoint", () =>
      Effect.gen(function*() {
        const base = yield* serve(offline)
        const alice = yield* user()
        const bob = yield* user()
        const run = yield* seedRun(alice.id)
        const client = yield* rpcClient(base, bob.key)
        for (const ref of [run.id, run.ref, "run_doesnotexist"]) {
          const send = yield* Effect.flip(collect(client("chat.send", { run: ref, message: "Which trades lost money?" })))
          expect(send).toEqual(new RunNotFound({ run: ref }))
          expect(yield* Effect.flip(client("chat.history", { run: ref }))).toEqual(new RunNotFound({ run: ref }))
          expect(yield* Effect.flip(client("chat.suggestions", { run: ref }))).toEqual(new RunNotFound({ run: ref }))
          expect(yield* Effect.flip(client("chat.applyRule", { run: ref, suggestion: "suggested-stop-msft.5.00000000" }))).toEqual(
            new RunNotFound({ run: ref })
          )
          const sse = yield* open(chatUrl(base, ref), bearer(bob.key))
          expect(sse.status).toBe(404)
          expect("body" in sse && sse.body).toEqual({ error: "RunNotFound", run: ref, reason: `no run ${ref}` })
        }
        // Nothing was recorded for bob's attempts; alice's chat is untouched.
        expect((yield* (yield* rpcClient(base, alice.key))("chat.history", { run: run.id })).session).toBeNull()
        // An admin sees every run; no key is 401.
        const root = yield* user("admin")
        expect((yield* (yield* rpcClient(base, root.key))("chat.history", { run: run.id })).run).toBe(run.id)
        expect((yield* open(chatUrl(base, run.id))).status).toBe(401)
      }), { timeout: 90_000 })

    it.scoped("an SSE chat stream whose key is revoked, or whose user is disabled, is told Unauthorized and closed; the others go on", () =>
      Effect.gen(function*() {
        const base = yield* serve(offline, quickRecheck)
        const alice = yield* user()
        const second = yield* Effect.orDie(ApiKeys.issue(alice.id))
        const run = yield* seedRun(alice.id)
        const a = yield* connect(chatUrl(base, run.id), bearer(alice.key))
        const b = yield* connect(chatUrl(base, run.id, `?token=${second.key}`))
        for (const c of [a, b]) expect(yield* Effect.promise(() => c.reader.next())).toEqual({ type: "retry", millis: 1_000 })

        /** Asks with `key`; the answer's last chunk's id, once both watchers that are left have seen it. */
        const answered = (key: string, watchers: ReadonlyArray<typeof a>) =>
          Effect.gen(function*() {
            const chunks = yield* collect((yield* rpcClient(base, key))("chat.send", { run: run.id, message: "Which trades lost money?" }))
            const id = `${chunks.at(-1)!.question}.${chunks.at(-1)!.index}`
            for (const c of watchers) expect((yield* Effect.promise(() => c.reader.events((e) => e.event === "done"))).at(-1)!.id).toBe(id)
            return id
          })
        /** The rest of a stream that must end (bounded: a stream that does not end fails the test, not its timeout). */
        const rest = (c: typeof a) => Effect.orDie(Effect.timeout(Effect.promise(() => c.reader.events()), "10 seconds"))
        /** What is left of a stream that must end: only the notice, as the run's events give it. */
        const refused = (rest: ReadonlyArray<SseEvent>, lastEventId: string) => {
          expect(rest.map((e) => [e.event, e.id])).toEqual([["error", undefined]])
          expect(JSON.parse(rest[0]!.data)).toEqual({ error: "Unauthorized", reason: expect.stringContaining("revoked"), lastEventId })
          expect(JSON.parse(rest[0]!.data).reason).toContain(`Last-Event-ID: ${lastEventId}`)
        }

        const first = yield* answered(alice.key, [a, b])
        // The first key is revoked: its stream ends, the other key's goes on.
        yield* Effect.orDie(ApiKeys.revoke(alice.keyId, alice.id))
        refused(yield* rest(a), first)
        const next = yield* answered(second.key, [b])
        // And coming back with it is a 401.
        expect((yield* open(chatUrl(base, run.id), bearer(alice.key))).status).toBe(401)

        // The user is disabled: the stream of their other key ends too.
        yield* Effect.orDie(Users.disable(alice.id))
        refused(yield* rest(b), next)
        expect((yield* open(chatUrl(base, run.id, `?token=${second.key}`))).status).toBe(401)
      }), { timeout: 90_000 })

    it.scoped("an answer streaming over chat.send is cut short with Unauthorized once its key is revoked; the answer is still recorded", () =>
      Effect.gen(function*() {
        // A slow answer (about 2 s): what ends the stream well before its end is the re-check.
        const pieces = Array.from({ length: 100 }, (_, i) => `piece${i} `)
        const fake = yield* FakeOllama.start(() => ({ chunks: pieces, chunkDelayMillis: 20 }))
        const base = yield* serve({ OLLAMA_HOST: fake.url }, quickRecheck)
        const alice = yield* user()
        const other = yield* Effect.orDie(ApiKeys.issue(alice.id))
        const run = yield* seedRun(alice.id)
        const client = yield* rpcClient(base, alice.key)
        const got: Array<ChatChunk> = []
        const asking = yield* Effect.fork(Effect.either(
          Stream.runForEach(client("chat.send", { run: run.id, message: "Why did MSFT lose?" }), (c) => Effect.sync(() => got.push(c)))
        ))
        expect(yield* eventually(() => got.filter((c) => c._tag === "Token").length >= 3)).toBe(true)

        yield* Effect.orDie(ApiKeys.revoke(alice.keyId, alice.id))
        expect(yield* Fiber.join(asking)).toEqual(Either.left(new Unauthorized({ reason: ApiKeys.refused().reason })))
        expect(got.map((c) => c._tag).filter((tag) => tag === "Done" || tag === "Failed")).toEqual([])
        expect(textOf(got).length).toBeLessThan(pieces.join("").length)

        // The asker went away, not the answer: it finishes and is recorded whole, as the other key reads it.
        const history = (yield* rpcClient(base, other.key))("chat.history", { run: run.id })
        let messages = (yield* history).messages
        for (let i = 0; i < 500 && messages.at(-1)?.role !== "assistant"; i++) {
          yield* Effect.sleep("20 millis")
          messages = (yield* history).messages
        }
        expect(messages.at(-1)).toMatchObject({ role: "assistant", content: pieces.join(""), error: null })
      }), { timeout: 90_000 })

    it.scoped("an admin demoted while watching or asking about another's run: both streams end with RunNotFound, as requests are answered", () =>
      Effect.gen(function*() {
        // A slow answer (about 2 s), which the admin asks and watches, and the owner watches.
        const pieces = Array.from({ length: 100 }, (_, i) => `piece${i} `)
        const fake = yield* FakeOllama.start(() => ({ chunks: pieces, chunkDelayMillis: 20 }))
        const base = yield* serve({ OLLAMA_HOST: fake.url }, quickRecheck)
        const alice = yield* user()
        const root = yield* user("admin")
        const run = yield* seedRun(alice.id)
        // By its reference: the answer names what was asked for.
        const watching = yield* connect(chatUrl(base, run.ref), bearer(root.key))
        const owning = yield* connect(chatUrl(base, run.ref), bearer(alice.key))
        const client = yield* rpcClient(base, root.key)
        const got: Array<ChatChunk> = []
        const asking = yield* Effect.fork(Effect.either(
          Stream.runForEach(client("chat.send", { run: run.ref, message: "Why did MSFT lose?" }), (c) => Effect.sync(() => got.push(c)))
        ))
        // Many re-checks while an admin: both go on.
        expect(yield* eventually(() => got.filter((c) => c._tag === "Token").length >= 10)).toBe(true)

        yield* Effect.orDie(Users.setRole(root.id, "user"))
        const ended = yield* Fiber.join(asking)
        const asked = yield* Effect.flip(client("chat.history", { run: run.ref }))
        expect(asked).toEqual(new RunNotFound({ run: run.ref }))
        expect(ended).toEqual(Either.left(asked))
        expect(got.map((c) => c._tag).filter((tag) => tag === "Done" || tag === "Failed")).toEqual([])

        // Bounded: a stream that does not end fails here, not at the test's timeout.
        const rest = yield* Effect.orDie(Effect.timeout(Effect.promise(() => watching.reader.events()), "10 seconds"))
        const notice = rest.at(-1)!
        expect([notice.event, notice.id]).toEqual(["error", undefined])
        expect(rest.map((e) => e.event)).not.toContain("done")
        const again = yield* open(chatUrl(base, run.ref), bearer(root.key))
        expect(again.status).toBe(404)
        expect(JSON.parse(notice.data)).toEqual("body" in again && again.body)
        expect(JSON.parse(notice.data)).toEqual({ error: "RunNotFound", run: run.ref, reason: `no run ${run.ref}` })

        // The owner's watch goes on: the answer ends, whole, and is recorded.
        const seen = yield* Effect.promise(() => owning.reader.events((e) => e.event === "done"))
        expect(seen.filter((e) => e.event === "token").map((e) => JSON.parse(e.data).text).join("")).toBe(pieces.join(""))
      }), { timeout: 90_000 })

    it.scoped("bad payloads are typed errors naming the field", () =>
      Effect.gen(function*() {
        const base = yield* serve(offline)
        const alice = yield* user()
        const run = yield* seedRun(alice.id)
        const client = yield* rpcClient(base, alice.key)
        const refused = (message: string) => Effect.flip(collect(client("chat.send", { run: run.id, message })))
        for (const [message, reason] of [
          ["", "must not be empty"],
          [" \n\t ", "must not be empty"],
          ["x".repeat(4_001), "at most 4000 characters"],
          ["a\u0007b", "control characters"],
          // Refused by the edge for every procedure: no database keeps it.
          ["a\u0000b", "U+0000"],
          ["a\ud800b", "unpaired UTF-16 surrogate"]
        ] as const) {
          const error = yield* refused(message)
          expect(error._tag).toBe("InvalidRequest")
          if (error._tag !== "InvalidRequest") continue
          expect(error.field).toBe("message")
          expect(error.reason).toContain(reason)
        }
        // 4,000 characters is within the bound (no tool fits: the offline agent says what it can do).
        const longest = yield* collect(client("chat.send", { run: run.id, message: "y".repeat(4_000) }))
        expect(longest.at(-1)!._tag).toBe("Done")
        // Nothing was recorded for the refused ones.
        expect((yield* client("chat.history", { run: run.id })).messages.map((m) => m.role)).toEqual(["user", "assistant"])

        for (const suggestion of ["nonsense", "suggested-stop-msft.5.deadbeef", "suggested-stop-msft.0.deadbeef"]) {
          expect((yield* Effect.flip(client("chat.applyRule", { run: run.id, suggestion })))._tag).toBe("SuggestionNotFound")
        }
        const badResume = yield* open(chatUrl(base, run.id), { ...bearer(alice.key), "last-event-id": "yesterday" })
        expect(badResume.status).toBe(400)
        expect("body" in badResume && badResume.body).toMatchObject({ error: "InvalidRequest", field: "Last-Event-ID" })
      }), { timeout: 90_000 })
  })
}
