/**
 * The watchers' feed of a run's chat: a watcher arriving mid-answer gets it from its start, but an
 * answer whose end this process never saw (lost with a fan-out connection, its process gone) is not
 * shown as going on once it has been silent longer than any answer can be.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Option } from "effect"
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
})
