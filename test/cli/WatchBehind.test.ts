/**
 * `swarm runs watch` told by the server that it fell behind the run (`Unavailable { behind }`: its
 * subscription overflowed, or a write to it waited too long) says so — not that it lost the server,
 * which is up — and follows the run again from the last event it saw; a server that stops is still
 * "lost". `swarm runs events` goes on from the last event it printed in the same way, and gives up,
 * saying how to go on, when cut off again and again with nothing read; other commands say the
 * server cut their stream off, not that it cannot do it. Over a stand-in for the server's client:
 * what the server sends is WatchServer.test.ts's and RpcSlowClient.test.ts's.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { RunInfo } from "../../schemas/Rpc.js"
import { Unavailable } from "../../schemas/Rpc.js"
import * as Io from "../../src/cli/Io.js"
import * as Remote from "../../src/cli/Remote.js"
import { server, standIn } from "./standIn.js"
import * as RemoteRuns from "../../src/cli/RemoteRuns.js"
import * as RunEventsCommand from "../../src/cli/RunEventsCommand.js"


const info = (status: string): RunInfo => ({
  id: "run_behind",
  ref: "s#1",
  strategy: "s",
  strategyVersion: 1,
  number: 1,
  mode: "backtest",
  status,
  failure: null,
  metrics: null,
  events: null,
  checksum: null,
  startedAt: new Date(0),
  finishedAt: null,
  initialCash: 100_000_000_000 as RunInfo["initialCash"]
})

const event = (seq: number) => ({ seq, tag: "DecisionMade", json: `{"seq":${seq}}` })

/** A server whose `n`th stream of the run's events (from 1) after `since` is `streams(n, since)`. */
const remoteStreaming = (streams: (n: number, since: number) => Stream.Stream<ReturnType<typeof event>, Unavailable>) => {
  const asked: Array<number> = []
  const client = {
    runs: {
      get: () => Effect.succeed(info(asked.length < 2 ? "running" : "completed")),
      status: () => Stream.empty,
      events: ({ since }: { readonly since: number }) => {
        asked.push(since)
        return streams(asked.length, since)
      }
    }
  }
  const remote = standIn(client)
  return { remote, asked }
}

/** A server whose first stream of the run's events gives events 1..3 then fails with `error`; the next gives 4..5 and ends with the run. */
const remoteFailingWith = (error: Unavailable) =>
  remoteStreaming((n) => n === 1 ? Stream.concat(Stream.make(event(1), event(2), event(3)), Stream.fail(error)) : Stream.make(event(4), event(5)))

const behind = new Unavailable({ reason: "fell behind the run; resume from event 3", behind: true })

it.live("a stream ended because the client fell behind is said so, not 'lost', and the run is followed again from the last event seen", () =>
  Effect.gen(function*() {
    const { asked, remote } = remoteFailingWith(behind)
    const captured = Io.capture()
    yield* RemoteRuns.watch(captured.io, remote, "run_behind", { since: 0, keep: 5, json: true })
    expect(asked).toEqual([0, 3])
    expect(captured.stdout().split("\n").filter((line) => line !== "")).toHaveLength(5)
    expect(captured.stderr()).toBe(
      `fell behind run run_behind on ${server} (fell behind the run; resume from event 3); following it again from event #3…\n` +
        `following run run_behind on ${server} again from event #4\n`
    )
    expect(captured.stderr()).not.toContain("lost")
  }))

it.live("a server that could not go on is still lost, and reconnected to", () =>
  Effect.gen(function*() {
    const { asked, remote } = remoteFailingWith(new Unavailable({ reason: "the server is stopping" }))
    const captured = Io.capture()
    yield* RemoteRuns.watch(captured.io, remote, "run_behind", { since: 0, keep: 5, json: true })
    expect(asked).toEqual([0, 3])
    expect(captured.stderr()).toBe(
      `lost ${server} (the server is stopping); reconnecting from event #3…\n` +
        `back on ${server}: following run run_behind again from event #4\n`
    )
  }))

it.live("runs events: a stream cut off for falling behind goes on from the last event printed, no gap and no duplicate, and says so on stderr", () =>
  Effect.gen(function*() {
    const { asked, remote } = remoteFailingWith(behind)
    const captured = Io.capture()
    yield* RunEventsCommand.remoteEvents(captured.io, remote, "run_behind", { since: 0, types: [], json: true })
    expect(asked).toEqual([0, 3])
    expect(captured.stdout()).toBe([1, 2, 3, 4, 5].map((seq) => `{"seq":${seq}}\n`).join(""))
    expect(captured.stderr()).toBe(`fell behind run run_behind on ${server} (fell behind the run; resume from event 3); going on from event #3…\n`)
  }))

it.live("runs events: cut off again and again with no event read in between, it gives up saying how to go on; any other failure ends it as before", () =>
  Effect.gen(function*() {
    // Three events, then nothing but cut-offs.
    const { asked, remote } = remoteStreaming((n) => n === 1 ? Stream.concat(Stream.make(event(1), event(2), event(3)), Stream.fail(behind)) : Stream.fail(behind))
    const captured = Io.capture()
    const failed = yield* Effect.flip(RunEventsCommand.remoteEvents(captured.io, remote, "run_behind", { since: 0, types: [], json: true }))
    expect(asked).toEqual([0, 3, 3, 3])
    expect(failed).toMatchObject({
      _tag: "RemoteFailed",
      field: "server",
      unavailable: true,
      reason: `fell behind run run_behind on ${server} 3 times with no event read in between (fell behind the run; resume from event 3): ` +
        "swarm runs events run_behind --since 3 goes on from event #3"
    })
    expect(captured.stdout().split("\n").filter((line) => line !== "")).toHaveLength(3)

    const stopping = remoteStreaming(() => Stream.fail(new Unavailable({ reason: "the server is stopping" })))
    const other = yield* Effect.flip(RunEventsCommand.remoteEvents(Io.capture().io, stopping.remote, "run_behind", { since: 0, types: [], json: true }))
    expect(stopping.asked).toEqual([0])
    expect(other).toMatchObject({ _tag: "RemoteFailed", reason: `${server} cannot do it now: the server is stopping` })
  }))

it("a command whose stream the server cut off for reading too slowly says so, not that the server cannot do it", () => {
  const target = { server, serverFrom: "test", key: undefined, keyFrom: undefined } as const
  expect(Remote.translate(target, "run")(new Unavailable({ reason: "a write to it waited 30 s", behind: true }))).toMatchObject({
    _tag: "RemoteFailed",
    field: "server",
    unavailable: true,
    reason: `${server} cut off this run's stream: this client read it more slowly than it came (a write to it waited 30 s)`
  })
})
