/**
 * `swarm chat ask` whose answer's stream is cut off mid-answer — the server cut off this client for
 * reading too slowly (`Unavailable { behind }`), or the connection broke — reads on after the last
 * chunk it printed (`chat.follow`), every token printed once, and says so on stderr; cut off again
 * and again with nothing read, it gives up saying how to read on; a server that no longer holds the
 * rest sends it to `chat history`. `swarm chat follow` reads on the same way. Over a stand-in for
 * the server's client, as WatchBehind.test.ts; the server's side is test/edge/ChatFollow.test.ts's.
 */
import { RpcClientError } from "@effect/rpc/RpcClientError"
import { expect, it } from "@effect/vitest"
import { Effect, Fiber, Stream, TestClock } from "effect"
import type { ChatChunk, ChatFollowed } from "../../schemas/Chat.js"
import { Unavailable } from "../../schemas/Rpc.js"
import * as ChatCommand from "../../src/cli/ChatCommand.js"
import * as Io from "../../src/cli/Io.js"
import { server, standIn } from "./standIn.js"

const run = "run_cut"

const asked: ChatChunk = { _tag: "Asked", question: 5, index: 0, run, content: "why?" }
const token = (index: number, question = 5): ChatChunk => ({ _tag: "Token", question, index, text: `t${index} ` })
const done = (index: number): ChatChunk => ({ _tag: "Done", question: 5, index, message: 9, backend: "offline", model: "offline", tokensIn: 0, tokensOut: 0 })

/** The whole answer: its question, tokens 1..8, its end. */
const answer: ReadonlyArray<ChatChunk> = [asked, ...Array.from({ length: 8 }, (_, i) => token(i + 1)), done(9)]

type Failure = Unavailable | RpcClientError

/** A server whose `chat.send` is `send`, and whose `n`th `chat.follow` (from 1) after `after` is `follows(n, after)`. */
const remoteOf = (send: Stream.Stream<ChatChunk, Failure>, follows: (n: number, after: string | undefined) => Stream.Stream<ChatFollowed, Failure>) => {
  const asked: Array<string | undefined> = []
  const client = {
    chat: {
      send: () => send,
      follow: ({ after }: { readonly after?: string }) => {
        asked.push(after)
        return follows(asked.length, after)
      }
    }
  }
  const remote = standIn(client)
  return { remote, asked }
}

/** The answer from after `after` (`5.<index>`) on, and the next answer's start after it (never printed by `ask`). */
const restAfter = (after: string | undefined): Stream.Stream<ChatFollowed, Failure> =>
  Stream.make(...answer.slice(Number(after!.split(".")[1]) + 1), { _tag: "Asked", question: 11, index: 0, run, content: "and?" } as ChatFollowed)

const behind = new Unavailable({ reason: "a write to it waited 30 s", behind: true })
const cutAfter = (n: number, error: Failure) => Stream.concat(Stream.fromIterable(answer.slice(0, n + 1)), Stream.fail(error))
const text = answer.flatMap((c) => (c._tag === "Token" ? [c.text] : [])).join("")

it.live("chat ask cut off for reading too slowly reads on after the last chunk printed: every token once, and says so", () =>
  Effect.gen(function*() {
    const { asked, remote } = remoteOf(cutAfter(3, behind), (_, after) => restAfter(after))
    const captured = Io.capture()
    yield* ChatCommand.askRemote(captured.io, remote, run, "why?", false)
    expect(asked).toEqual(["5.3"])
    expect(captured.stdout()).toBe(`${text}\n`)
    expect(captured.stderr()).toBe(
      `\n${server} cut off this stream: this client read it more slowly than it came (a write to it waited 30 s); reading on after chunk 5.3…\n`
    )
  }))

it.live("--json: each chunk once, in order; a dropped connection is read on too, after a moment", () =>
  Effect.gen(function*() {
    const reset = new RpcClientError({ reason: "Protocol", message: "fetch failed", cause: Object.assign(new Error("socket"), { code: "ECONNRESET" }) })
    const { asked, remote } = remoteOf(cutAfter(6, reset), (_, after) => restAfter(after))
    const captured = Io.capture()
    yield* ChatCommand.askRemote(captured.io, remote, run, "why?", true)
    expect(asked).toEqual(["5.6"])
    const lines = captured.stdout().trimEnd().split("\n").map((line) => JSON.parse(line) as { question: number; index: number })
    expect(lines.map((c) => `${c.question}.${c.index}`)).toEqual(answer.map((c) => `5.${c.index}`))
    expect(captured.stderr()).toBe(`the stream from ${server} was cut off (cannot reach ${server}: the connection was reset); reading on after chunk 5.6…\n`)
  }))

it.live("cut off again and again with nothing read in between, chat ask gives up saying how to read on; read on in part, it tries again", () =>
  Effect.gen(function*() {
    // Two chunks more on the first reading on, then nothing but cut-offs.
    const { asked, remote } = remoteOf(
      cutAfter(2, behind),
      (n) => n === 1 ? Stream.concat(Stream.make(token(3), token(4)), Stream.fail(behind)) : Stream.fail(behind)
    )
    const captured = Io.capture()
    const failed = yield* Effect.flip(ChatCommand.askRemote(captured.io, remote, run, "why?", false))
    expect(asked).toEqual(["5.2", "5.4", "5.4", "5.4"])
    expect(failed).toMatchObject({
      _tag: "RemoteFailed",
      field: "server",
      unavailable: true,
      reason: `${server} cut off this stream: this client read it more slowly than it came (a write to it waited 30 s), 3 times with nothing read in between: ` +
        `swarm chat follow ${run} --after 5.4 reads on from there, until Ctrl-C (swarm chat history ${run} has the answer once it is done)`
    })
    // Every token had, once, and the line closed.
    expect(captured.stdout()).toBe("t1 t2 t3 t4 \n")
  }))

it.live("a server that no longer holds the rest sends the asker to chat history; cut off before the question was recorded, it fails as before", () =>
  Effect.gen(function*() {
    const missed = remoteOf(cutAfter(3, behind), () => Stream.make({ _tag: "Missed", after: "5.3", reason: "gone: chat.history has every answer" } as ChatFollowed))
    const captured = Io.capture()
    const failed = yield* Effect.flip(ChatCommand.askRemote(captured.io, missed.remote, run, "why?", false))
    expect(failed).toMatchObject({ _tag: "RemoteFailed", field: "answer", reason: `could not be read on after a cut-off: gone: swarm chat history ${run} has every answer` })
    expect(captured.stdout()).toBe("t1 t2 t3 \n")

    const early = remoteOf(Stream.fail(new Unavailable({ reason: "the system agent cannot answer: too many questions waiting" })), (_, after) => restAfter(after))
    const refused = yield* Effect.flip(ChatCommand.askRemote(Io.capture().io, early.remote, run, "why?", false))
    expect(early.asked).toEqual([])
    expect(refused).toMatchObject({ _tag: "RemoteFailed", reason: `${server} cannot do it now: the system agent cannot answer: too many questions waiting` })
  }))

it.live("chat follow reads on after a cut-off from the last chunk printed, the next question on a line of its own", () =>
  Effect.gen(function*() {
    const { asked, remote } = remoteOf(Stream.empty, (n, after) =>
      n === 1
        ? Stream.concat(Stream.fromIterable(answer.slice(0, 3)), Stream.fail(behind))
        : n === 2
        ? Stream.concat(restAfter(after), Stream.fail(behind))
        : Stream.fail(behind))
    const captured = Io.capture()
    const failed = yield* Effect.flip(ChatCommand.followRemote(captured.io, remote, run, { after: undefined, json: false }))
    expect(asked).toEqual([undefined, "5.2", "11.0", "11.0", "11.0"])
    expect(captured.stdout()).toBe(`#5 asked: why?\n${text}\n#11 asked: and?\n`)
    expect(failed).toMatchObject({ _tag: "RemoteFailed", reason: expect.stringContaining(`swarm chat follow ${run} --after 11.0 reads on from there`) })
  }))

it.effect("chat follow that cannot connect fails at once; one that stayed connected, quiet, and was cut off follows again from now", () =>
  Effect.gen(function*() {
    const refused = new RpcClientError({ reason: "Protocol", message: "fetch failed", cause: Object.assign(new Error("socket"), { code: "ECONNREFUSED" }) })
    const down = remoteOf(Stream.empty, () => Stream.fail(refused))
    const failed = yield* Effect.flip(ChatCommand.followRemote(Io.capture().io, down.remote, run, { after: undefined, json: false }))
    expect(down.asked).toEqual([undefined])
    expect(failed).toMatchObject({ _tag: "RemoteFailed", reason: `cannot reach ${server}: connection refused` })

    // Quiet for a minute, then the connection breaks: followed again (after a moment), and read.
    const quiet = remoteOf(Stream.empty, (n, after) =>
      n === 1
        ? Stream.concat(Stream.fromEffect(Effect.sleep("1 minute")).pipe(Stream.drain), Stream.fail(refused))
        : n === 2
        ? Stream.concat(Stream.fromIterable(answer), Stream.fail(behind))
        : after === undefined ? Stream.empty : Stream.fail(behind))
    const captured = Io.capture()
    const following = yield* Effect.fork(Effect.flip(ChatCommand.followRemote(captured.io, quiet.remote, run, { after: undefined, json: false })))
    yield* TestClock.adjust("1 minute")
    yield* TestClock.adjust("1 second")
    const gaveUp = yield* Fiber.join(following)
    expect(quiet.asked).toEqual([undefined, undefined, "5.9", "5.9", "5.9"])
    expect(captured.stdout()).toBe(`#5 asked: why?\n${text}\n`)
    expect(captured.stderr().split("\n")[0]).toBe(`the stream from ${server} was cut off (cannot reach ${server}: connection refused); following it again…`)
    expect(gaveUp).toMatchObject({ reason: expect.stringContaining(`swarm chat follow ${run} --after 5.9 reads on from there`) })
  }))
