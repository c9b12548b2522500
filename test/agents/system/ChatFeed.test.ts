/**
 * The watchers' feed of a run's chat: a watcher arriving mid-answer gets it from its start, but an
 * answer whose end this process never saw (lost with a fan-out connection, its process gone) is not
 * shown as going on once it has been silent longer than any answer can be.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Option } from "effect"
import type { ChatChunk } from "../../../schemas/Chat.js"
import { Feed, STALE_ANSWER_MILLIS } from "../../../agents/system/SystemAgent.js"

const asked: ChatChunk = { _tag: "Asked", question: 17, index: 0, run: "run_1", content: "why?" }
const token: ChatChunk = { _tag: "Token", question: 17, index: 1, text: "because" }

describe("the chat feed", () => {
  it.scoped("an answer from another process whose end never came: shown to late watchers until it has been silent too long", () =>
    Effect.gen(function*() {
      let now = 1_000_000
      let remote: (run: string, chunk: ChatChunk) => void = () => {}
      const feed = new Feed(16, { kind: "redis", publish: () => {}, listen: (listener) => (remote = listener) }, () => now)
      remote("run_1", asked)
      remote("run_1", token)
      // What a new watcher is handed at once (nothing waits: `takeAll` of an empty mailbox would).
      const tags = (box: Effect.Effect.Success<ReturnType<typeof feed.subscribe>>) =>
        Option.getOrElse(box.unsafeSize(), () => 0) === 0
          ? Effect.succeed([])
          : Effect.map(box.takeAll, ([chunks]) => Chunk.toArray(chunks).map((c) => c._tag))
      // Mid-answer, a minute on: from its start.
      now += 60_000
      expect(yield* tags(yield* feed.subscribe("run_1"))).toEqual(["Asked", "Token"])
      // Its Done lost: long after, a new watcher is not shown it as an answer going on.
      now += STALE_ANSWER_MILLIS
      expect(yield* tags(yield* feed.subscribe("run_1"))).toEqual([])
      // The next question starts afresh.
      remote("run_1", { ...asked, question: 21 })
      expect(yield* tags(yield* feed.subscribe("run_1"))).toEqual(["Asked"])
    }))

  it.scoped("chunks of another process's answer lost on the way: its watchers are told so (not shown an answer with words missing), and a late watcher is not handed it as whole", () =>
    Effect.gen(function*() {
      let remote: (run: string, chunk: ChatChunk) => void = () => {}
      const feed = new Feed(16, { kind: "redis", publish: () => {}, listen: (listener) => (remote = listener) })
      const watcher = yield* feed.subscribe("run_1")
      remote("run_1", asked)
      remote("run_1", token)
      // Index 2 never came.
      remote("run_1", { _tag: "Token", question: 17, index: 3, text: "it" })
      const [chunks] = yield* watcher.takeAll
      expect(Chunk.toArray(chunks).map((c) => c.index)).toEqual([0, 1])
      const exit = yield* Effect.exit(watcher.await)
      const error = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(error).toMatchObject({ _tag: "ChatWatchOverflow", lostFrom: { question: 17, index: 2 } })
      // What the SSE endpoint says (`event: overflow`, then "reconnect, and read what was missed with chat.history").
      expect(error?.message).toBe("chunks of the answer to question 17 from 2 on did not reach this server from the one answering it (run run_1)")
      // A watcher coming back gets the rest as it comes, not the broken start as if whole.
      const back = yield* feed.subscribe("run_1")
      expect(Option.getOrElse(back.unsafeSize(), () => 0)).toBe(0)
      remote("run_1", { _tag: "Token", question: 17, index: 4, text: " went" })
      expect(Chunk.toArray((yield* back.takeAll)[0]).map((c) => c.index)).toEqual([4])
      // The next answer, whole: shown as usual.
      remote("run_1", { ...asked, question: 21 })
      remote("run_1", { ...token, question: 21 })
      expect(Chunk.toArray((yield* back.takeAll)[0]).map((c) => `${c.question}.${c.index}`)).toEqual(["21.0", "21.1"])
    }))

  it.scoped("an answer's question lost on the way (its first chunk heard is not index 0): its watchers are told so", () =>
    Effect.gen(function*() {
      let remote: (run: string, chunk: ChatChunk) => void = () => {}
      const feed = new Feed(16, { kind: "redis", publish: () => {}, listen: (listener) => (remote = listener) })
      const watcher = yield* feed.subscribe("run_1")
      remote("run_1", token)
      const exit = yield* Effect.exit(watcher.await)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined).toMatchObject({ lostFrom: { question: 17, index: 0 } })
    }))
})
