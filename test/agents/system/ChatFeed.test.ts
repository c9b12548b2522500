/**
 * The watchers' feed of a run's chat: a watcher arriving mid-answer gets it from its start, but an
 * answer whose end this process never saw (lost with a fan-out connection, its process gone) is not
 * shown as going on once it has been silent longer than any answer can be. A follower resuming after
 * a chunk gets what came after it while the answers are kept, and is told when they are not.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Option } from "effect"
import type { ChatChunk } from "../../../schemas/Chat.js"
import { Feed, KEEP_ENDED_MILLIS, STALE_ANSWER_MILLIS } from "../../../agents/system/SystemAgent.js"

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

  it.scoped("a follower resuming after a chunk: the rest of an answer ended within KEEP_ENDED_MILLIS and every answer since; past that, missed", () =>
    Effect.gen(function*() {
      let now = 1_000_000
      const feed = new Feed(16, undefined, () => now)
      const answer = (question: number, tokens: number): ReadonlyArray<ChatChunk> => [
        { ...asked, question },
        ...Array.from({ length: tokens }, (_, i): ChatChunk => ({ _tag: "Token", question, index: i + 1, text: `${i}` })),
        { _tag: "Done", question, index: tokens + 1, message: question + 1, backend: "offline", model: "offline", tokensIn: 0, tokensOut: 0 }
      ]
      for (const chunk of [...answer(1, 3), ...answer(3, 2), ...answer(5, 1).slice(0, 2)]) feed.publish("run_1", chunk)
      const resumed = (after?: { question: number; index: number }) =>
        Effect.map(feed.follow("run_1", after), ({ held, missed }) => ({ held: held.map((c) => `${c.question}.${c.index}`), missed }))
      // In the first answer (ended): its rest, the second whole, the third so far.
      expect(yield* resumed({ question: 1, index: 2 })).toEqual({ held: ["1.3", "1.4", "3.0", "3.1", "3.2", "3.3", "5.0", "5.1"], missed: false })
      // At the second's end: the third so far. In the third: its rest so far.
      expect(yield* resumed({ question: 3, index: 3 })).toEqual({ held: ["5.0", "5.1"], missed: false })
      expect(yield* resumed({ question: 5, index: 0 })).toEqual({ held: ["5.1"], missed: false })
      // No position: the answer in progress from its start, as a watcher gets it.
      expect(yield* resumed()).toEqual({ held: ["5.0", "5.1"], missed: false })
      // A position in no answer held: missed, and what is held after it.
      expect(yield* resumed({ question: 2, index: 0 })).toEqual({ held: ["3.0", "3.1", "3.2", "3.3", "5.0", "5.1"], missed: true })
      // Long after they ended, the ended answers are gone: missed, unless at the last one's end.
      feed.publish("run_1", answer(5, 1)[2]!)
      now += KEEP_ENDED_MILLIS + 1
      expect(yield* resumed({ question: 3, index: 1 })).toEqual({ held: [], missed: true })
      expect(yield* resumed({ question: 5, index: 2 })).toEqual({ held: [], missed: false })
      // What comes after is live.
      const { box } = yield* feed.follow("run_1", { question: 5, index: 2 })
      feed.publish("run_1", { ...asked, question: 7 })
      expect(Chunk.toArray((yield* box.takeAll)[0]).map((c) => `${c.question}.${c.index}`)).toEqual(["7.0"])
    }))
})
