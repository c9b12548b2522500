/**
 * `chat.follow` through the whole server on a real port (Server.layer, real API keys): an answer
 * whose `chat.send` stream was cut off is read on after the last chunk had — every chunk once, no
 * gap, no duplicate — while it goes on, after it ended, and from the middle; a follower past an
 * answer's end gets what comes next; a position the server no longer holds (a restarted server) is
 * said `Missed`, pointing to `chat.history`; the SSE route resumes with `Last-Event-ID` alike; a bad
 * `after` is `InvalidRequest` naming it; another user's run is answered as a missing one; a revoked
 * key ends the stream. On every back-end.
 */
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Option, Stream } from "effect"
import { Unauthorized } from "../../schemas/Auth.js"
import { type ChatChunk, type ChatFollowed, positionOf } from "../../schemas/Chat.js"
import { RunNotFound, Unavailable } from "../../schemas/Rpc.js"
import * as ChatCommand from "../../src/cli/ChatCommand.js"
import * as Io from "../../src/cli/Io.js"
import * as Remote from "../../src/cli/Remote.js"
import * as Follow from "../../src/edge/Follow.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import * as FakeOllama from "../llm/FakeOllama.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { finishedRun, newUser, offline, quickRecheck, serve } from "./chatServer.js"
import { bearer, connect, eventually, open, rpcClient } from "./fixtures.js"

const user = newUser("follower")

/** A finished run of `owner`, and its reference. */
const seedRun = (owner: string) => finishedRun(owner, "chat follow")

/** An offline server, alice with a finished run of hers and a client of hers, and bob with a client of his. */
const aliceAndBob = Effect.gen(function*() {
  const base = yield* serve(offline)
  const alice = yield* user
  const bob = yield* user
  const run = yield* seedRun(alice.id)
  return { base, alice, run, client: yield* rpcClient(base, alice.key), other: yield* rpcClient(base, bob.key) }
})

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

/** Bounded: a stream that does not end fails the test here, not at its timeout. */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.timeoutFail(effect, { duration: "15 seconds", onTimeout: () => "the stream did not end" as const })

/** A stream's items until the end (`Done` or `Failed`) of the answer to `question`. */
const untilEnd = <E, R>(stream: Stream.Stream<ChatFollowed, E, R>, question: number) =>
  within(collect(stream.pipe(Stream.takeUntil((c) => (c._tag === "Done" || c._tag === "Failed") && c.question === question))))

const chatUrl = (base: string, run: string) => `${base}/v1/runs/${encodeURIComponent(run)}/chat`

const textOf = (chunks: ReadonlyArray<ChatFollowed>) => chunks.flatMap((c) => (c._tag === "Token" ? [c.text] : [])).join("")
const ids = (chunks: ReadonlyArray<ChatFollowed>) => chunks.map((c) => (c._tag === "Missed" ? `missed after ${c.after}` : positionOf(c)))

/** A slow answer (about 2 s): a stream cut off early is cut off mid-answer. */
const pieces = Array.from({ length: 100 }, (_, i) => `piece${i} `)

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`chat.follow (${backend.name})`, (it) => {
    it.scoped("an answer cut off mid-stream is read on after its last chunk, while it goes on and once it ended: every chunk once, in order", () =>
      Effect.gen(function*() {
        const fake = yield* FakeOllama.start(() => ({ chunks: pieces, chunkDelayMillis: 20 }))
        const base = yield* serve({ OLLAMA_HOST: fake.url })
        const alice = yield* user
        const run = yield* seedRun(alice.id)
        const client = yield* rpcClient(base, alice.key)

        // The asker's stream drops after 12 chunks (its question and 11 tokens), the answer going on.
        const first = yield* collect(Stream.take(client("chat.send", { run: run.ref, message: "Why did MSFT lose?" }), 12))
        expect(first.map((c) => c.index)).toEqual(Array.from({ length: 12 }, (_, i) => i))
        const question = first[0]!.question
        // Read on from where it stopped, while the answer goes on: the rest, to its end.
        const rest = yield* untilEnd(client("chat.follow", { run: run.ref, after: positionOf(first.at(-1)!) }), question)
        expect(rest[0]).toMatchObject({ _tag: "Token", question, index: 12 })
        expect(rest.at(-1)).toMatchObject({ _tag: "Done", question })
        const whole = [...first, ...rest]
        expect(whole.map((c) => c._tag === "Missed" ? -1 : c.index)).toEqual(whole.map((_, i) => i))
        expect(textOf(whole)).toBe(pieces.join(""))
        const done = rest.at(-1) as Extract<ChatChunk, { _tag: "Done" }>
        const recorded = (yield* client("chat.history", { run: run.id })).messages.find((m) => m.seq === done.message)
        expect(recorded?.content).toBe(pieces.join(""))

        // Once it ended, and from its middle: the rest of it, held by the server, to its end and no further.
        const later = yield* untilEnd(client("chat.follow", { run: run.id, after: `${question}.40` }), question)
        expect(ids(later)).toEqual(ids(whole.slice(41)))
        expect(later).toEqual(whole.slice(41))
        // From its question: the whole answer.
        expect(yield* untilEnd(client("chat.follow", { run: run.id, after: `${question}.0` }), question)).toEqual(whole.slice(1))
      }), { timeout: 90_000 })

    it.scoped("swarm chat ask whose answer's stream is cut off mid-answer reads on over chat.follow: the answer printed whole, every token once", () =>
      Effect.gen(function*() {
        const fake = yield* FakeOllama.start(() => ({ chunks: pieces, chunkDelayMillis: 20 }))
        const base = yield* serve({ OLLAMA_HOST: fake.url })
        const alice = yield* user
        const run = yield* seedRun(alice.id)
        const remote = yield* Remote.connect({ server: base, serverFrom: "test", key: alice.key, keyFrom: undefined })
        // The server cuts the asker off after 12 chunks (as it does a client that reads too slowly).
        const cutting = {
          ...remote,
          client: {
            ...remote.client,
            chat: {
              ...remote.client.chat,
              send: (payload: Parameters<typeof remote.client.chat.send>[0]) =>
                Stream.concat(Stream.take(remote.client.chat.send(payload), 12), Stream.fail(new Unavailable({ reason: "a write to it waited 30 s", behind: true })))
            }
          }
        } as Remote.Remote
        const captured = Io.capture()
        yield* ChatCommand.askRemote(captured.io, cutting, run.ref, "Why did MSFT lose?", false)
        expect(captured.stdout()).toBe(`${pieces.join("").trimEnd()} \n`)
        expect(captured.stderr()).toMatch(/this client read it more slowly than it came \(a write to it waited 30 s\); reading on after chunk \d+\.11…\n$/)
      }), { timeout: 90_000 })

    it.scoped("a follower past an answer's end gets what comes next, once; a position a restarted server does not hold is Missed, pointing to chat.history", () =>
      Effect.gen(function*() {
        const alice = yield* user
        const run = yield* seedRun(alice.id)
        const answered = yield* Effect.scoped(Effect.gen(function*() {
          const base = yield* serve(offline)
          const client = yield* rpcClient(base, alice.key)
          const answer = yield* collect(client("chat.send", { run: run.id, message: "Which trades lost money?" }))
          const end = answer.at(-1)!
          expect(end._tag).toBe("Done")

          // After the end: nothing of that answer again; the next one whole, from its question.
          const got: Array<ChatFollowed> = []
          const following = yield* Effect.fork(
            Stream.runForEach(client("chat.follow", { run: run.id, after: positionOf(end) }), (c) => Effect.sync(() => got.push(c)))
          )
          // However late it subscribes, the next answer is held for it whole (in progress, or ended after its position).
          const next = yield* collect(client("chat.send", { run: run.id, message: "What is the Sharpe ratio?" }))
          expect(yield* eventually(() => got.length >= next.length)).toBe(true)
          yield* Fiber.interrupt(following)
          expect(got).toEqual(next)
          expect(got[0]).toMatchObject({ _tag: "Asked", content: "What is the Sharpe ratio?" })
          return answer
        }))

        // Another server on the same database holds none of it: said, then what comes next.
        const base = yield* serve(offline)
        const client = yield* rpcClient(base, alice.key)
        const after = positionOf(answered[3]!)
        const said = yield* collect(Stream.take(client("chat.follow", { run: run.ref, after }), 1))
        expect(said).toEqual([{ _tag: "Missed", after, reason: expect.stringContaining("chat.history has every answer") }])
        expect(said[0]!._tag === "Missed" && said[0]!.reason).toContain(`no longer holds the chat of run ${run.id} after ${after}`)
      }), { timeout: 90_000 })

    it.scoped("SSE resumes the same way: Last-Event-ID in an answer that has ended gives the rest of it; one a restarted server does not hold, event: missed", () =>
      Effect.gen(function*() {
        const alice = yield* user
        const run = yield* seedRun(alice.id)
        const answer = yield* Effect.scoped(Effect.gen(function*() {
          const base = yield* serve(offline)
          const answer = yield* collect((yield* rpcClient(base, alice.key))("chat.send", { run: run.id, message: "Which trades lost money?" }))
          // The watcher dropped after chunk 2, the answer ended since: it reconnects with its last id.
          const back = yield* connect(chatUrl(base, run.id), { ...bearer(alice.key), "last-event-id": positionOf(answer[2]!) })
          const seen = yield* within(Effect.promise(() => back.reader.events((e) => e.event === "done")))
          expect(seen.map((e) => e.id)).toEqual(answer.slice(3).map(positionOf))
          return answer
        }))
        const base = yield* serve(offline)
        const back = yield* connect(chatUrl(base, run.id), { ...bearer(alice.key), "last-event-id": positionOf(answer[2]!) })
        const [missed] = yield* within(Effect.promise(() => back.reader.events((e) => e.event === "missed")))
        expect(missed).toMatchObject({ event: "missed", id: undefined })
        expect(JSON.parse(missed!.data)).toEqual({ after: positionOf(answer[2]!), reason: expect.stringContaining("chat.history has every answer") })
      }), { timeout: 90_000 })

    it.scoped("a chat stream's connection reads take their turn with the followers' page reads: chat.follow, chat.send, chat.history and SSE wait for a permit, their errors unchanged", () =>
      Effect.gen(function*() {
        const { alice, base, client, other, run } = yield* aliceAndBob
        // Both permits of the followers' reads taken, as by two followers reading pages meanwhile.
        let held = true
        yield* Effect.acquireRelease(Follow.catchUpReads.take(2), () => (held ? Follow.catchUpReads.release(2) : Effect.void))
        // A position this server does not hold: said at once (`Missed`) once the run is read.
        const following = yield* Effect.fork(collect(Stream.take(client("chat.follow", { run: run.id, after: "1.0" }), 1)))
        const asking = yield* Effect.fork(collect(Stream.take(client("chat.send", { run: run.id, message: "Which trades lost money?" }), 1)))
        const history = yield* Effect.fork(client("chat.history", { run: run.id }))
        const refused = yield* Effect.fork(Effect.either(collect(other("chat.follow", { run: run.id }))))
        const watching = yield* Effect.fork(open(chatUrl(base, run.id), { ...bearer(alice.key), "last-event-id": "1.0" }))
        yield* Effect.sleep("400 millis")
        // The run is not read yet: nothing, not even the refusal of another's run or the SSE's headers.
        for (const fiber of [following, asking, history, refused, watching] as ReadonlyArray<Fiber.Fiber<unknown, unknown>>) expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        held = false
        yield* Follow.catchUpReads.release(2)
        expect(yield* within(Fiber.join(following))).toEqual([{ _tag: "Missed", after: "1.0", reason: expect.stringContaining("chat.history has every answer") }])
        expect(yield* within(Fiber.join(asking))).toMatchObject([{ _tag: "Asked", content: "Which trades lost money?" }])
        expect((yield* within(Fiber.join(history))).run).toBe(run.id)
        // The typed error as before: another's run is one that does not exist.
        expect(yield* within(Fiber.join(refused))).toEqual(Either.left(new RunNotFound({ run: run.id })))
        const watched = yield* within(Fiber.join(watching))
        expect(watched.status).toBe(200)
        if ("reader" in watched) {
          yield* Effect.addFinalizer(() => Effect.sync(() => watched.reader.close()))
          const [missed] = yield* within(Effect.promise(() => watched.reader.events((e) => e.event === "missed")))
          expect(missed).toMatchObject({ event: "missed", id: undefined })
        }
      }), { timeout: 90_000 })

    it.scoped("a bad after is InvalidRequest naming it; another user's run is answered as a missing one", () =>
      Effect.gen(function*() {
        const { client, other, run } = yield* aliceAndBob
        for (const after of ["yesterday", "3", "0.0", "1.x", "-1.2", "1.2.3", "99999999999.0"]) {
          const refused = yield* Effect.flip(collect(client("chat.follow", { run: run.id, after })))
          expect(refused, after).toMatchObject({ _tag: "InvalidRequest", field: "after" })
          expect(refused._tag === "InvalidRequest" && refused.reason, after).toContain("must be <question>.<index>")
        }
        for (const ref of [run.id, run.ref, "run_doesnotexist"]) {
          for (const payload of [{ run: ref }, { run: ref, after: "1.0" }]) {
            expect(yield* Effect.flip(collect(other("chat.follow", payload)))).toEqual(new RunNotFound({ run: ref }))
          }
        }
      }), { timeout: 90_000 })

    it.scoped("a follower whose key is revoked is cut short with Unauthorized", () =>
      Effect.gen(function*() {
        const fake = yield* FakeOllama.start(() => ({ chunks: pieces, chunkDelayMillis: 20 }))
        const base = yield* serve({ OLLAMA_HOST: fake.url }, quickRecheck)
        const alice = yield* user
        const other = yield* Effect.orDie(ApiKeys.issue(alice.id))
        const run = yield* seedRun(alice.id)
        const got: Array<ChatFollowed> = []
        const following = yield* Effect.fork(Effect.either(
          Stream.runForEach((yield* rpcClient(base, alice.key))("chat.follow", { run: run.id }), (c) => Effect.sync(() => got.push(c)))
        ))
        yield* Effect.sleep("300 millis")
        yield* Effect.forkScoped(Stream.runDrain((yield* rpcClient(base, other.key))("chat.send", { run: run.id, message: "Why did MSFT lose?" })))
        expect(yield* eventually(() => got.filter((c) => c._tag === "Token").length >= 3)).toBe(true)
        yield* Effect.orDie(ApiKeys.revoke(alice.keyId, alice.id))
        expect(yield* Fiber.join(following)).toEqual(Either.left(new Unauthorized({ reason: ApiKeys.refused().reason })))
        expect(got.map((c) => c._tag)).not.toContain("Done")
      }), { timeout: 90_000 })
  })
}
