/**
 * A run's status on its SSE stream (`event: status`, no `id:`): what a dashboard watching a live
 * paper run relies on to show "paused (by whom, why, since when)" and "resumed" as it happens —
 * told first thing on connect (a dashboard opened on a paused run sees it paused before any event)
 * and on each change, whether an operator paused it, an admin disabled its user, or another process
 * did (its row read every `poll`; with Redis, at once). None of it is a run event: the run's events
 * are streamed and recorded exactly as before, and its replay gives its checksum.
 */
import { afterAll, expect, layer } from "@effect/vitest"
import { Chunk, Context, Effect, Fiber, Layer, Stream } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import type { RunStatusNote } from "../../schemas/Rpc.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as Redis from "../../src/bus/Redis.js"
import type { RunManagerService } from "../../src/edge/RunManager.js"
import * as RunStatusFeed from "../../src/edge/RunStatusFeed.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Strategies from "../../src/store/Strategies.js"
import { cleanUp, connection, runRedis, uniquePrefix } from "../bus/redis.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { bearer, connect, createUsers, eventsUrl, managerOn, principals, server, type SseItem, stubAuthenticator } from "./fixtures.js"

type Event = Extract<SseItem, { type: "event" }>

const alice = principals["sk_alice"]
const root = principals["sk_root"]

const prefix = uniquePrefix("runs-status")
afterAll(() => cleanUp(prefix))

let named = 0
/** A slow paper run of alice's (600 bars at 20 a second: half a minute), live in `manager`. */
const slowPaperRun = (manager: RunManagerService, bars = 600) =>
  Effect.gen(function*() {
    const name = `run status ${++named}`
    yield* Strategies.create(alice.userId, smaStrategy(name))
    return yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars }, speed: 20 * 86_400 })
  })

/** The stream's items up to its next status frame (included): the status it says, and the events before it. */
const nextStatus = (reader: { events: (stop: (e: Event) => boolean) => Promise<Array<Event>> }) =>
  Effect.map(Effect.promise(() => reader.events((e) => e.event === "status")), (items) => {
    const last = items.at(-1)
    if (last?.event !== "status") throw new Error(`the stream ended with no status frame: ${JSON.stringify(items.slice(-3))}`)
    // A status frame has no id: an EventSource's Last-Event-ID stays the last event's.
    expect(last.id).toBeUndefined()
    return { note: JSON.parse(last.data) as RunStatusNote, before: items.slice(0, -1) }
  })

/** The first item of a stream after `retry:` that is an event frame (a status, or a run event). */
const firstFrame = (reader: { events: (stop: (e: Event) => boolean) => Promise<Array<Event>> }) =>
  Effect.map(Effect.promise(() => reader.events(() => true)), (items) => items[0]!)

/** An ISO time within the last minute. */
const recent = (at: string | undefined) => at !== undefined && Math.abs(Date.now() - Date.parse(at)) < 60_000

for (const backend of backends) {
  const environment = Layer.effectDiscard(Effect.orDie(createUsers)).pipe(
    Layer.provideMerge(backend.store),
    Layer.merge(stubAuthenticator)
  )

  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`a run's status on its SSE stream (${backend.name})`, (it) => {
    it.scoped("a live paper run paused and resumed: its clients are told at once — first thing on connect, then each change, by whom and since when", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        // Read again only when the manager says so: what the clients are told comes at once, not at a poll.
        const feed = yield* RunStatusFeed.makeInProcess({ poll: "1 hour" })
        const srv = yield* server({ sharedBus: bus, statuses: feed })
        const manager = yield* managerOn(bus, feed)
        const run = yield* slowPaperRun(manager)
        const client = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        // Before any event: running, never paused.
        const first = yield* firstFrame(client.reader)
        expect(first).toEqual({ type: "event", id: undefined, event: "status", data: JSON.stringify({ status: "running" }) })

        yield* manager.pause(alice, run.id)
        const paused = yield* nextStatus(client.reader)
        expect(paused.note).toMatchObject({ status: "paused", by: { id: "alice", name: "alice" } })
        expect(paused.note.reason).toBeUndefined()
        expect(recent(paused.note.at)).toBe(true)

        // Opened on the paused run: told it is paused before any event, by whom and since when.
        const late = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        const lateFirst = yield* firstFrame(late.reader)
        expect(lateFirst).toMatchObject({ event: "status", id: undefined })
        expect(JSON.parse(lateFirst.data)).toEqual(paused.note)
        // Resuming after an event it has: told it too (Last-Event-ID is the run's, not the status's).
        const resuming = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": "1" })
        expect(JSON.parse((yield* firstFrame(resuming.reader)).data)).toEqual(paused.note)

        yield* manager.resume(alice, run.id)
        for (const reader of [client.reader, late.reader]) {
          const resumed = yield* nextStatus(reader)
          expect(resumed.note).toMatchObject({ status: "running", by: { id: "alice", name: "alice" } })
          expect(Date.parse(resumed.note.at!)).toBeGreaterThanOrEqual(Date.parse(paused.note.at!))
        }

        // Stopped: the end says how it ended (no status frame for it); events before it, as ever, with ids.
        yield* manager.stop(alice, run.id)
        const rest = yield* Effect.promise(() => client.reader.events())
        expect(rest.at(-1)?.event).toBe("end")
        expect(JSON.parse(rest.at(-1)!.data)).toMatchObject({ status: "stopped" })
        expect(rest.filter((e) => e.id === undefined).map((e) => e.event)).toEqual(["end"])
      }), { timeout: 60_000 })

    it.scoped("a user disabled: their run's clients are told it is paused, by the admin, and why", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        const feed = yield* RunStatusFeed.makeInProcess({ poll: "1 hour" })
        const srv = yield* server({ sharedBus: bus, statuses: feed })
        const manager = yield* managerOn(bus, feed)
        const run = yield* slowPaperRun(manager)
        const client = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        expect(JSON.parse((yield* firstFrame(client.reader)).data)).toEqual({ status: "running" })
        // What `admin.setUser { disabled: true }` does once the user's row says disabled.
        yield* manager.pauseOwnedBy(root, alice.userId, "user alice disabled")
        const paused = yield* nextStatus(client.reader)
        expect(paused.note).toMatchObject({ status: "paused", by: { id: "root", name: "root" }, reason: "user alice disabled" })
        expect(recent(paused.note.at)).toBe(true)
        yield* manager.stop(root, run.id)
      }), { timeout: 60_000 })

    it.scoped("a run executing in another process, which says nothing here: its status is read from its row every poll", () =>
      Effect.gen(function*() {
        // The run's process: its manager and feed. The dashboard's: a server of its own, its own bus
        // (the run is tailed from the database) and its own feed, which nobody tells anything.
        const bus = yield* InProcessBus.make()
        const feed = yield* RunStatusFeed.makeInProcess({ poll: "1 hour" })
        const manager = yield* managerOn(bus, feed)
        const elsewhere = yield* server({ statuses: yield* RunStatusFeed.makeInProcess({ poll: "100 millis" }), sse: { poll: "100 millis" } })
        const run = yield* slowPaperRun(manager)
        const client = yield* connect(eventsUrl(elsewhere, run.id), bearer("sk_alice"))
        expect(JSON.parse((yield* firstFrame(client.reader)).data)).toEqual({ status: "running" })
        yield* manager.pause(alice, run.id)
        expect((yield* nextStatus(client.reader)).note).toMatchObject({ status: "paused", by: { id: "alice" } })
        yield* manager.resume(alice, run.id)
        expect((yield* nextStatus(client.reader)).note).toMatchObject({ status: "running", by: { id: "alice" } })
        yield* manager.stop(alice, run.id)
      }), { timeout: 60_000 })

    it.scoped("a run paused and resumed while a client follows it records no status: streamed and stored the same, and its replay gives its checksum", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        const feed = yield* RunStatusFeed.makeInProcess({ poll: "1 hour" })
        const srv = yield* server({ sharedBus: bus, statuses: feed })
        const manager = yield* managerOn(bus, feed)
        const run = yield* slowPaperRun(manager, 120)
        const client = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        yield* nextStatus(client.reader)
        yield* manager.pause(alice, run.id)
        yield* nextStatus(client.reader)
        yield* Effect.sleep("300 millis")
        yield* manager.resume(alice, run.id)
        const all = yield* Effect.promise(() => client.reader.events())
        expect(all.at(-1)?.event).toBe("end")
        expect(JSON.parse(all.at(-1)!.data)).toMatchObject({ status: "completed" })
        const stored = yield* Runs.events(run.id as RunId, 0, 1_000_000)
        expect(stored.some((e) => e.tag === "status")).toBe(false)
        const streamed = all.filter((e) => e.id !== undefined)
        // From the first after the connect on: the stream is the run's events, byte for byte.
        const from = Number(streamed[0]!.id)
        expect(streamed.map((e) => ({ seq: Number(e.id), tag: e.event, body: e.data }))).toEqual(
          stored.filter((e) => e.seq >= from).map((e) => ({ seq: e.seq, tag: e.tag, body: e.body }))
        )
        const replayed = yield* StoredRun.replay(run.id)
        expect(replayed.checksum).toBe((yield* Runs.get(run.id)).checksum)
      }), { timeout: 60_000 })

    it.scoped.skipIf(!runRedis)("with Redis: a change said in one process is read at once in the others", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        const process = () =>
          Effect.flatMap(connection(prefix), (redis) =>
            Effect.map(
              Layer.build(RunStatusFeed.layerRedisWith({ poll: "1 hour" }).pipe(Layer.provide(Layer.succeed(Redis.Redis, redis)))),
              (context) => Context.get(context, RunStatusFeed.RunStatusFeed)
            ))
        const here = yield* process()
        const there = yield* process()
        // Both subscribed (a subscription is made as the connection becomes ready).
        yield* Effect.sleep("200 millis")
        const manager = yield* managerOn(bus, here)
        const run = yield* slowPaperRun(manager)
        const seen = yield* Effect.fork(there.changes(run.id).pipe(Stream.take(2), Stream.runCollect))
        yield* Effect.sleep("200 millis")
        yield* manager.pause(alice, run.id)
        const notes = Chunk.toReadonlyArray(yield* Fiber.join(seen).pipe(Effect.timeout("10 seconds")))
        expect(notes.map((n) => n.status)).toEqual(["running", "paused"])
        yield* manager.stop(alice, run.id)
      }), { timeout: 60_000 })
  })
}
