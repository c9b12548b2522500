/**
 * `swarm runs watch` told by the server that it fell behind the run (`Unavailable { behind }`: its
 * subscription overflowed, or a write to it waited too long) says so — not that it lost the server,
 * which is up — and follows the run again from the last event it saw; a server that stops is still
 * "lost". Over a stand-in for the server's client: what the server sends is WatchServer.test.ts's
 * and RpcSlowClient.test.ts's.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { RunInfo } from "../../schemas/Rpc.js"
import { Unavailable } from "../../schemas/Rpc.js"
import * as Io from "../../src/cli/Io.js"
import type * as Remote from "../../src/cli/Remote.js"
import * as RemoteRuns from "../../src/cli/RemoteRuns.js"

const server = "http://swarm.test:7430"

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

/** A server whose first stream of the run's events gives events 1..3 then fails with `error`; the next gives 4..5 and ends with the run. */
const remoteFailingWith = (error: Unavailable) => {
  const asked: Array<number> = []
  const event = (seq: number) => ({ seq, tag: "DecisionMade", json: "{}" })
  const client = {
    runs: {
      get: () => Effect.succeed(info(asked.length < 2 ? "running" : "completed")),
      status: () => Stream.empty,
      events: ({ since }: { readonly since: number }) => {
        asked.push(since)
        return asked.length === 1
          ? Stream.concat(Stream.make(event(1), event(2), event(3)), Stream.fail(error))
          : Stream.make(event(4), event(5))
      }
    }
  }
  const remote = {
    target: { server, serverFrom: "test", key: undefined, keyFrom: undefined },
    client,
    call: () => (request: Effect.Effect<unknown>) => request,
    follow: () => (stream: Stream.Stream<unknown>) => stream
  } as unknown as Remote.Remote
  return { remote, asked }
}

it.live("a stream ended because the client fell behind is said so, not 'lost', and the run is followed again from the last event seen", () =>
  Effect.gen(function*() {
    const { asked, remote } = remoteFailingWith(new Unavailable({ reason: "fell behind the run; resume from event 3", behind: true }))
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
