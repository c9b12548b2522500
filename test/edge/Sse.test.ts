/**
 * `GET /v1/runs/:id/events` as a dashboard relies on it, over a real server on a free port and on
 * every back-end: a recorded run's events exactly as stored; resuming (`Last-Event-ID`, `?since=`)
 * with no gap and no duplicate across reconnects while the run is live and its database lags the
 * bus; `204 No Content` for a finished run the client has all of (an EventSource then stops); the same refusals for a missing key, a bad resume point and another user's run as the
 * contract says; heartbeats; a client that stops reading is told and dropped while the run goes
 * on; a client whose key is revoked or whose user is disabled is told and dropped while it
 * streams, and so is an admin demoted while watching another's run, with the answer a request
 * for it gets then; and a client that leaves takes its subscription with it.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Option, Schema } from "effect"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import { Authenticator } from "../../src/edge/Auth.js"
import * as AuthLive from "../../src/edge/AuthLive.js"
import * as Follow from "../../src/edge/Follow.js"
import * as Sse from "../../src/edge/Sse.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import * as Runs from "../../src/store/Runs.js"
import * as Users from "../../src/store/Users.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { stored } from "../store/fixtures/workload.js"
import {
  bearer,
  connect,
  createUsers,
  eventsUrl,
  eventually,
  open,
  range,
  rawClient,
  server,
  type SimulatedRun,
  simulatedRun,
  type SseItem,
  stubAuthenticator
} from "./fixtures.js"

type Event = Extract<SseItem, { type: "event" }>

/** The run events among `items` (not `end`, `overflow`, `error`), as their sequence numbers. */
const runSeqs = (items: ReadonlyArray<Event>) => items.filter((e) => e.id !== undefined).map((e) => Number(e.id))

/** Every stored event of a run, as the stream must carry them. */
const storedEvents = (run: string) =>
  Effect.map(Runs.events(run as never, 0, 1_000_000), (rows) => rows.map((r) => ({ id: String(r.seq), event: r.tag, data: r.body })))

/** The events must be exactly those of `run` numbered `seqs`, bytes and all. */
const expectExactly = (items: ReadonlyArray<Event>, run: SimulatedRun, seqs: ReadonlyArray<number>) => {
  const events = items.filter((e) => e.id !== undefined)
  expect(events.map((e) => Number(e.id))).toEqual(seqs)
  for (const e of events) expect(e.data).toBe(run.body(Number(e.id)))
}

let recordedCount = 0
/** A small recorded (finished) backtest of alice's. */
const recordedRun = Effect.map(
  StoredRun.backtest(stored(2, 40, { name: `sse recorded ${++recordedCount}`, owner: "alice" })),
  (r) => r.run
)

const badSeqs = ["-1", "9007199254740993", "99999999999999999999", "abc", "1e3", "1.5", "0x10", " 1", ""]

for (const backend of backends) {
  const environment = Layer.effectDiscard(Effect.orDie(createUsers)).pipe(
    Layer.provideMerge(backend.store),
    Layer.merge(stubAuthenticator)
  )

  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`SSE (${backend.name})`, (it) => {
    it.scoped("a failed run ends its stream saying so: RunFailed last, then the end with its status and the reason", () =>
      Effect.gen(function*() {
        // Its first intent needs an operator and none is attached: it fails there, with RunFailed.
        const options = stored(2, 120, { name: `sse failed ${++recordedCount}`, owner: "alice" })
        const strategy = Schema.decodeUnknownSync(Strategy)({
          ...Schema.encodeSync(Strategy)(options.strategy),
          risk: { approval: { policy: "pause", notionalPctAbove: 1, timeoutSeconds: 60 } }
        })
        const { run } = yield* StoredRun.backtest({ ...options, strategy })
        const record = yield* Runs.get(run)
        expect(record.status).toBe("failed")
        const srv = yield* server()
        const stream = yield* connect(eventsUrl(srv, run), bearer("sk_alice"))
        const items = yield* Effect.promise(() => stream.reader.events())
        const events = items.filter((e) => e.id !== undefined)
        expect(events.at(-1)!.event).toBe("RunFailed")
        expect(JSON.parse(events.at(-1)!.data).reason).toBe(record.failure)
        expect(items.at(-1)).toMatchObject({ event: "end", id: undefined })
        const end = JSON.parse(items.at(-1)!.data)
        expect(end).toEqual({ run, lastEventId: events.length, status: "failed", failure: record.failure })
        expect(end.failure).toMatch(/needs approval/)
      }))

    it.scoped("a recorded run: every event in order, id/event/data as stored, then the end; ?since= and Last-Event-ID resume; 204 once there is nothing left", () =>
      Effect.gen(function*() {
        const run = yield* recordedRun
        const expected = yield* storedEvents(run)
        expect(expected.length).toBeGreaterThan(20)
        // Small pages, so that paging is exercised.
        const srv = yield* server({ sse: { pageSize: 7 } })

        const all = yield* connect(eventsUrl(srv, run), bearer("sk_alice"))
        expect(all.headers.get("content-type")).toBe("text/event-stream")
        expect(all.headers.get("cache-control")).toBe("no-cache")
        expect(all.headers.get("x-accel-buffering")).toBe("no")
        const items = yield* Effect.promise(() => all.reader.events())
        expect(items.slice(0, -1).map(({ data, event, id }) => ({ id, event, data }))).toEqual(expected)
        // A finished run ends the stream after its events, saying so.
        expect(items.at(-1)).toMatchObject({ event: "end", id: undefined })
        expect(JSON.parse(items.at(-1)!.data)).toEqual({ run, lastEventId: expected.length, status: "completed" })

        const tail = (query: string, headers: Record<string, string> = {}) =>
          Effect.flatMap(connect(eventsUrl(srv, run, query), { ...bearer("sk_alice"), ...headers }), (c) =>
            Effect.promise(() => c.reader.events()))
        expect(runSeqs(yield* tail("since=10"))).toEqual(range(11, expected.length))
        expect(runSeqs(yield* tail("", { "last-event-id": "17" }))).toEqual(range(18, expected.length))
        // An EventSource reconnects to the same URL with Last-Event-ID: the header wins.
        expect(runSeqs(yield* tail("since=3", { "last-event-id": "20" }))).toEqual(range(21, expected.length))
        // The token may come in the query (EventSource cannot set headers).
        const byToken = yield* connect(eventsUrl(srv, run, `token=sk_alice&since=${expected.length - 1}`))
        expect(runSeqs(yield* Effect.promise(() => byToken.reader.events()))).toEqual([expected.length])
        // At the end, past it, and the largest resume point there is: nothing to read, ever — 204 No
        // Content, the answer after which an EventSource does not reconnect (it would, every second,
        // after an `end`).
        const last = expected.length
        for (const [query, headers] of [
          [`since=${last}`, {}],
          [`since=${last + 1_000}`, {}],
          ["since=9007199254740992", {}],
          ["since=3", { "last-event-id": String(last) }],
          [`token=sk_alice&since=${last}`, {}]
        ] as const) {
          const answer = yield* open(eventsUrl(srv, run, query), { ...(query.includes("token=") ? {} : bearer("sk_alice")), ...headers })
          expect(answer.status, `${query} ${JSON.stringify(headers)}`).toBe(204)
          expect("body" in answer && answer.body).toBe("")
        }
        // One event short of the end: that event, then the end.
        expect((yield* tail(`since=${last - 1}`)).map((e) => e.id ?? e.event)).toEqual([String(last), "end"])
      }))

    it.scoped("a live run: resume across a reconnect gives 1..N once each, while the database lags the bus", () =>
      Effect.gen(function*() {
        const srv = yield* server({ sse: { pageSize: 4 } })
        const run = yield* simulatedRun(srv.bus, "alice")
        run.publish(1, 30)
        yield* run.commit(10)

        // First connection: 1..10 from the database, 11..30 from the ring, then live.
        const first = yield* open(eventsUrl(srv, run.id), bearer("sk_alice"))
        if (!("reader" in first)) return expect.fail(`status ${first.status}`)
        const a1 = yield* Effect.promise(() => first.reader.events((e) => e.id === "20"))
        run.publish(31, 40)
        yield* run.commit(25)
        const a2 = yield* Effect.promise(() => first.reader.events((e) => e.id === "35"))
        first.reader.close()
        const a = [...a1, ...a2]
        expectExactly(a, run, range(1, 35))

        // While nobody listens.
        run.publish(41, 60)
        yield* run.commit(50)

        const second = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": "35" })
        const b1 = yield* Effect.promise(() => second.reader.events((e) => e.id === "60"))
        const finishing = yield* Effect.fork(Effect.gen(function*() {
          run.publish(61, 70)
          yield* Effect.sleep("20 millis")
          run.publish(71, 75)
          yield* run.finish
        }))
        const b2 = yield* Effect.promise(() => second.reader.events())
        yield* Fiber.join(finishing)
        const b = [...b1, ...b2]
        expectExactly(b, run, range(36, 75))
        expect(b.at(-1)?.event).toBe("end")
        // Its reconnection, with the last id it was given: the run is over and it has it all.
        expect((yield* open(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": "75" })).status).toBe(204)
        // One that has not: the rest, then the end.
        const late = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": "70" })
        const rest = yield* Effect.promise(() => late.reader.events())
        expectExactly(rest, run, range(71, 75))
        expect(rest.at(-1)?.event).toBe("end")
        // The union: every event exactly once.
        expect([...runSeqs(a), ...runSeqs(b)]).toEqual(range(1, 75))
      }))

    it.scoped("clients reconnecting from the database share the frames the live clients' events were encoded as: one encoding per event, the same bytes", () =>
      Effect.gen(function*() {
        // A ring that no longer reaches back: clients resuming read the database's pages, the last not whole.
        const srv = yield* server({ bus: { ring: 5 }, sse: { pageSize: 10 } })
        const run = yield* simulatedRun(srv.bus, "alice")
        const before = Sse.framesEncoded()
        const live = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        run.publish(1, 35)
        yield* run.commit(35)
        expectExactly(yield* Effect.promise(() => live.reader.events((e) => e.id === "35")), run, range(1, 35))
        expect(Sse.framesEncoded() - before).toBe(35)

        // Five reconnect: from the database's whole pages, its latest page (31..35, not whole), the ring.
        for (const since of [0, 3, 12, 28, 31]) {
          const back = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": String(since) })
          expectExactly(yield* Effect.promise(() => back.reader.events((e) => e.id === "35")), run, range(since + 1, 35))
        }
        expect(Sse.framesEncoded() - before).toBe(35)

        // And on: each new event once, every client given it, byte for byte.
        const again = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": "20" })
        run.publish(36, 40)
        yield* run.commit(40)
        expectExactly(yield* Effect.promise(() => again.reader.events((e) => e.id === "40")), run, range(21, 40))
        expectExactly(yield* Effect.promise(() => live.reader.events((e) => e.id === "40")), run, range(36, 40))
        expect(Sse.framesEncoded() - before).toBe(40)
      }))

    it.scoped("a resume point past a live run's latest event: told so once, then the events after it; its end names the run's last event", () =>
      Effect.gen(function*() {
        const srv = yield* server({ bus: { ring: 5 } })
        const run = yield* simulatedRun(srv.bus, "alice")
        run.publish(1, 12)
        yield* run.commit(4)
        // The database has 1..4, the ring 8..12: the latest is 12.
        const ahead = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": "14" })
        const first = [yield* Effect.promise(() => ahead.reader.next()), yield* Effect.promise(() => ahead.reader.next())]
        expect(first).toEqual([{ type: "retry", millis: 1000 }, { type: "comment", text: "14 is past the run's latest event, #12: the stream sends the events after 14 as they come" }])
        // One far past it, which the run never reaches.
        const beyond = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": "999999" })
        // A resume point the run has reached gets no such comment.
        const behind = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": "10" })
        run.publish(13, 20)
        yield* run.finish
        const rest = yield* Effect.promise(() => ahead.reader.events())
        expectExactly(rest, run, range(15, 20))
        expect(JSON.parse(rest.at(-1)!.data)).toMatchObject({ run: run.id, lastEventId: 20, status: "completed" })
        const never = yield* Effect.promise(() => beyond.reader.events())
        // The run's status on connect (no event: no id), then its end.
        expect(never.map((e) => e.id ?? e.event)).toEqual(["status", "end"])
        expect(JSON.parse(never[0]!.data)).toEqual({ status: "running" })
        expect(JSON.parse(never[1]!.data)).toMatchObject({ lastEventId: 20, status: "completed" })
        const items: Array<unknown> = []
        for (let item = yield* Effect.promise(() => behind.reader.next()); item !== undefined; item = yield* Effect.promise(() => behind.reader.next())) items.push(item)
        expect(items.filter((i: any) => i.type === "comment")).toEqual([])
        expectExactly(items.filter((i: any) => i.type === "event") as Array<Event>, run, range(11, 20))
      }))

    it.scoped("a ring shorter than the database's lag: the missing events come from the database as it commits them", () =>
      Effect.gen(function*() {
        const srv = yield* server({ sse: { pageSize: 5 }, bus: { ring: 5 } })
        const run = yield* simulatedRun(srv.bus, "alice")
        run.publish(1, 30)
        yield* run.commit(10)
        const client = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        // 11..25 are in neither the database nor the ring (26..30) until they are committed.
        const first = yield* Effect.promise(() => client.reader.events((e) => e.id === "10"))
        yield* run.commit(20)
        // Nothing is delivered meanwhile: the stream reads the database again by itself.
        const second = yield* Effect.promise(() => client.reader.events((e) => e.id === "20"))
        // Live events past the gap (and past the ring: it now holds 36..40) wait for it.
        run.publish(31, 40)
        yield* Effect.sleep("50 millis")
        yield* run.commit(30)
        const third = yield* Effect.promise(() => client.reader.events((e) => e.id === "40"))
        expectExactly([...first, ...second, ...third], run, range(1, 40))
      }))

    it.scoped("a stored backtest followed live (its events published as it records them): exactly the recorded events", () =>
      Effect.gen(function*() {
        const srv = yield* server()
        const started = yield* Deferred.make<string>()
        const publish = (event: RunEvent, json: string) => {
          if (event.seq === 1) Deferred.unsafeDone(started, Effect.succeed(event.run))
          srv.bus.publish(event.run, { seq: event.seq, tag: event._tag, json })
        }
        const running = yield* Effect.fork(
          Effect.tap(StoredRun.backtest(stored(3, 300, { name: "sse live backtest", owner: "alice", onEvent: publish })), (r) =>
            Effect.sync(() => srv.bus.end(r.run)))
        )
        const run = yield* Deferred.await(started)
        // One client from the start, one that leaves and comes back.
        const whole = yield* connect(eventsUrl(srv, run), bearer("sk_alice"))
        const leaving = yield* open(eventsUrl(srv, run), bearer("sk_alice"))
        if (!("reader" in leaving)) return expect.fail(`status ${leaving.status}`)
        const before = yield* Effect.promise(() => leaving.reader.events((e) => e.id === "50"))
        leaving.reader.close()
        const back = yield* connect(eventsUrl(srv, run), { ...bearer("sk_alice"), "last-event-id": "50" })
        const after = yield* Effect.promise(() => back.reader.events())
        const all = yield* Effect.promise(() => whole.reader.events())
        const result = yield* Fiber.join(running)
        const expected = yield* storedEvents(run)
        expect(expected.length).toBe(result.result.counts.events)
        const strip = (items: ReadonlyArray<Event>) => items.filter((e) => e.id !== undefined).map(({ data, event, id }) => ({ id, event, data }))
        expect(strip(all)).toEqual(expected)
        expect([...strip(before), ...strip(after)]).toEqual(expected)
        expect(all.at(-1)?.event).toBe("end")
      }))

    it.scoped("a run not live in this process (another process runs it): tailed from the database until it finishes", () =>
      Effect.gen(function*() {
        const srv = yield* server({ sse: { poll: "30 millis" } })
        // Its events go to the database only: nothing is published on this bus.
        const other = yield* server()
        const run = yield* simulatedRun(other.bus, "alice")
        run.publish(1, 5)
        yield* run.commit(5)
        const client = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        const firsts = yield* Effect.promise(() => client.reader.events((e) => e.id === "5"))
        run.publish(6, 12)
        yield* run.commit(12)
        const more = yield* Effect.promise(() => client.reader.events((e) => e.id === "12"))
        run.publish(13, 15)
        yield* run.finish
        const rest = yield* Effect.promise(() => client.reader.events())
        expectExactly([...firsts, ...more, ...rest], run, range(1, 15))
        expect(rest.at(-1)?.event).toBe("end")
      }))

    it.scoped("401 without a key, with an unknown key or a malformed header — the same JSON body shape, no stream", () =>
      Effect.gen(function*() {
        const run = yield* recordedRun
        const srv = yield* server()
        const cases: ReadonlyArray<[string, Record<string, string>]> = [
          ["", {}],
          ["", bearer("sk_nobody")],
          ["token=sk_nobody", {}],
          ["token=", {}],
          ["token=sk_alice&token=sk_bob", {}],
          ["", { authorization: "Basic YWxpY2U6cGFzcw==" }],
          ["", { authorization: "Bearer" }],
          // A bad header is not rescued by a good token.
          ["token=sk_alice", { authorization: "Bearer sk_nobody" }]
        ]
        for (const [query, headers] of cases) {
          const answer = yield* open(eventsUrl(srv, run, query), headers)
          expect(answer.status, `${query} ${JSON.stringify(headers)}`).toBe(401)
          expect(answer.headers.get("content-type")).toBe("application/json")
          expect(answer.headers.get("www-authenticate")).toBe("Bearer")
          if ("body" in answer) {
            expect(answer.body).toEqual({ error: "Unauthorized", reason: expect.any(String) })
          }
        }
        // And a known key is let in.
        expect((yield* open(eventsUrl(srv, run), bearer("sk_alice"))).status).toBe(200)
      }))

    it.scoped("another user's run is a 404 identical to a run that does not exist; an admin sees every run", () =>
      Effect.gen(function*() {
        const run = yield* recordedRun
        const srv = yield* server()
        const foreign = yield* open(eventsUrl(srv, run), bearer("sk_bob"))
        const unknown = yield* open(eventsUrl(srv, "run_000000000000"), bearer("sk_bob"))
        expect(foreign.status).toBe(404)
        expect(unknown.status).toBe(404)
        const normalized = (answer: typeof foreign, id: string) =>
          "body" in answer ? JSON.stringify(answer.body).split(id).join("<run>") : "(a stream)"
        expect(normalized(foreign, run)).toBe(normalized(unknown, "run_000000000000"))
        expect("body" in foreign && foreign.body).toEqual({ error: "RunNotFound", run, reason: `no run ${run}` })
        expect([...foreign.headers.keys()].filter((k) => k !== "date")).toEqual(
          [...unknown.headers.keys()].filter((k) => k !== "date")
        )
        // Nor does a resume point or the header/token route tell them apart.
        expect((yield* open(eventsUrl(srv, run, "token=sk_bob&since=5"))).status).toBe(404)
        const admin = yield* connect(eventsUrl(srv, run), bearer("sk_root"))
        expect(runSeqs(yield* Effect.promise(() => admin.reader.events())).length).toBeGreaterThan(20)
      }))

    it.scoped("400 naming the parameter for a bad ?since= or Last-Event-ID", () =>
      Effect.gen(function*() {
        const run = yield* recordedRun
        const srv = yield* server()
        for (const bad of badSeqs) {
          const bySince = yield* open(eventsUrl(srv, run, `since=${encodeURIComponent(bad)}`), bearer("sk_alice"))
          expect(bySince.status, `since=${bad}`).toBe(400)
          expect("body" in bySince && bySince.body).toMatchObject({ error: "InvalidRequest", field: "since", reason: expect.any(String) })
          // A header's value loses its surrounding spaces on the way: " 1" arrives as "1".
          if (bad.trim() !== bad) continue
          const byHeader = yield* open(eventsUrl(srv, run), { ...bearer("sk_alice"), "last-event-id": bad })
          expect(byHeader.status, `Last-Event-ID: ${bad}`).toBe(400)
          expect("body" in byHeader && byHeader.body).toMatchObject({ error: "InvalidRequest", field: "Last-Event-ID" })
        }
        const twice = yield* open(eventsUrl(srv, run, "since=1&since=2"), bearer("sk_alice"))
        expect("body" in twice && twice.body).toMatchObject({ error: "InvalidRequest", field: "since" })
      }))

    it.scoped("a connection's reads take their turn with the followers' page reads: clients reconnecting at once leave the pool to the runs", () =>
      Effect.gen(function*() {
        const run = yield* recordedRun
        const expected = yield* storedEvents(run)
        const srv = yield* server()
        // Both permits of the followers' reads taken, as by two followers reading pages meanwhile.
        let held = true
        yield* Effect.acquireRelease(Follow.catchUpReads.take(2), () => (held ? Follow.catchUpReads.release(2) : Effect.void))
        const opening = yield* Effect.fork(open(eventsUrl(srv, run), bearer("sk_alice")))
        yield* Effect.sleep(Duration.millis(400))
        // Its run, last event and status are not read yet: no answer, not even its headers.
        expect(Option.isNone(yield* Fiber.poll(opening))).toBe(true)
        held = false
        yield* Follow.catchUpReads.release(2)
        const answer = yield* Fiber.join(opening)
        expect(answer.status).toBe(200)
        const items = "reader" in answer ? yield* Effect.promise(() => answer.reader.events()) : []
        expect(runSeqs(items)).toEqual(range(1, expected.length))
        expect(items.at(-1)).toMatchObject({ event: "end" })
      }))

    it.scoped("heartbeats every interval while a live run is quiet", () =>
      Effect.gen(function*() {
        const srv = yield* server({ sse: { heartbeat: "40 millis" } })
        const run = yield* simulatedRun(srv.bus, "alice")
        run.publish(1, 1)
        yield* run.commit(1)
        const client = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        const items: Array<SseItem> = []
        while (items.filter((i) => i.type === "comment").length < 3) {
          items.push((yield* Effect.promise(() => client.reader.next()))!)
        }
        // The run's status first (no event: no id), then its one event.
        expect(items.filter((i) => i.type === "event").map((e) => "id" in e && (e.id ?? e.event))).toEqual(["status", "1"])
        expect(items.filter((i) => i.type === "comment")).toEqual([
          { type: "comment", text: "heartbeat" },
          { type: "comment", text: "heartbeat" },
          { type: "comment", text: "heartbeat" }
        ])
        // The retry advice came first.
        expect(items[0]).toEqual({ type: "retry", millis: 1000 })
      }))

    it.scoped("the subscription ends when the client disconnects", () =>
      Effect.gen(function*() {
        const srv = yield* server()
        const run = yield* simulatedRun(srv.bus, "alice")
        run.publish(1, 3)
        const clients = yield* Effect.forEach([1, 2], () => open(eventsUrl(srv, run.id), bearer("sk_alice")))
        for (const c of clients) {
          if (!("reader" in c)) return expect.fail(`status ${c.status}`)
          expect(runSeqs(yield* Effect.promise(() => c.reader.events((e) => e.id === "3"))).length).toBe(3)
        }
        expect(srv.bus.subscribers(run.id)).toBe(2)
        for (const c of clients) if ("reader" in c) c.reader.close()
        expect(yield* eventually(() => srv.bus.subscribers(run.id) === 0)).toBe(true)
        // An idle run followed by nobody is forgotten entirely once it ends.
        yield* run.finish
        expect(srv.bus.isLive(run.id)).toBe(false)
      }))

    it.scoped("a stream whose key is revoked, or whose user is disabled, is told Unauthorized and closed; the others go on", () =>
      Effect.gen(function*() {
        // The real authenticator on the database, its answers cached briefly, and a quick re-check.
        const auth = yield* AuthLive.make(ApiKeys.authenticateHash, { ttl: "20 millis" })
        const srv = yield* server({ sse: { recheck: "20 millis" } }).pipe(Effect.provideService(Authenticator, auth))
        const user = yield* Effect.orDie(Users.create(`sse-revoked-${++recordedCount}`))
        const first = yield* Effect.orDie(ApiKeys.issue(user.id))
        const second = yield* Effect.orDie(ApiKeys.issue(user.id))
        const run = yield* simulatedRun(srv.bus, user.id)
        run.publish(1, 3)
        yield* run.commit(3)
        const a = yield* connect(eventsUrl(srv, run.id), bearer(first.key))
        const b = yield* connect(eventsUrl(srv, run.id, `token=${second.key}`))
        for (const c of [a, b]) expect(runSeqs(yield* Effect.promise(() => c.reader.events((e) => e.id === "3")))).toEqual(range(1, 3))

        /** What is left of a stream that must end: its events, the last the notice. */
        const refused = (items: ReadonlyArray<Event>, lastEventId: number) => {
          const notice = items.at(-1)!
          expect(notice).toMatchObject({ event: "error", id: undefined })
          expect(JSON.parse(notice.data)).toEqual({ error: "Unauthorized", reason: expect.stringContaining("revoked"), lastEventId })
        }

        // The first key is revoked: its stream ends, the other key's goes on.
        yield* Effect.orDie(ApiKeys.revoke(first.id, user.id))
        const restOfA = yield* Effect.promise(() => a.reader.events())
        expect(runSeqs(restOfA)).toEqual([])
        refused(restOfA, 3)
        run.publish(4, 5)
        expect(runSeqs(yield* Effect.promise(() => b.reader.events((e) => e.id === "5")))).toEqual([4, 5])
        // And coming back with it is a 401.
        expect((yield* open(eventsUrl(srv, run.id), bearer(first.key))).status).toBe(401)

        // The user is disabled: the stream of their other key ends too.
        yield* Effect.orDie(Users.disable(user.id))
        const restOfB = yield* Effect.promise(() => b.reader.events())
        refused(restOfB, 5)
        expect(yield* eventually(() => srv.bus.subscribers(run.id) === 0)).toBe(true)
        expect((yield* open(eventsUrl(srv, run.id), bearer(second.key))).status).toBe(401)
      }))

    it.scoped("an admin demoted while watching another's run is told RunNotFound, as a request for it is answered, and closed; the owner's stream goes on", () =>
      Effect.gen(function*() {
        // The real authenticator on the database, its answers cached briefly, and a quick re-check.
        const auth = yield* AuthLive.make(ApiKeys.authenticateHash, { ttl: "20 millis" })
        const srv = yield* server({ sse: { recheck: "20 millis" } }).pipe(Effect.provideService(Authenticator, auth))
        const owner = yield* Effect.orDie(Users.create(`sse-owner-${++recordedCount}`))
        const admin = yield* Effect.orDie(Users.create(`sse-admin-${++recordedCount}`, "admin"))
        const ownerKey = yield* Effect.orDie(ApiKeys.issue(owner.id))
        const adminKey = yield* Effect.orDie(ApiKeys.issue(admin.id))
        const run = yield* simulatedRun(srv.bus, owner.id)
        run.publish(1, 3)
        yield* run.commit(3)
        const watching = yield* connect(eventsUrl(srv, run.id), bearer(adminKey.key))
        const owning = yield* connect(eventsUrl(srv, run.id), bearer(ownerKey.key))
        for (const c of [watching, owning]) {
          expect(runSeqs(yield* Effect.promise(() => c.reader.events((e) => e.id === "3")))).toEqual(range(1, 3))
        }
        // An admin still: many re-checks later, it streams on.
        yield* Effect.sleep("200 millis")
        run.publish(4, 4)
        for (const c of [watching, owning]) expect(runSeqs(yield* Effect.promise(() => c.reader.events((e) => e.id === "4")))).toEqual([4])

        // Demoted: the run is another's, and the stream ends as a request for it is answered now.
        yield* Effect.orDie(Users.setRole(admin.id, "user"))
        // Bounded: a stream that does not end fails here, not at the test's timeout.
        const rest = yield* Effect.orDie(Effect.timeout(Effect.promise(() => watching.reader.events()), "10 seconds"))
        expect(rest.map((e) => [e.event, e.id])).toEqual([["error", undefined]])
        const asked = yield* open(eventsUrl(srv, run.id), bearer(adminKey.key))
        expect(asked.status).toBe(404)
        expect(JSON.parse(rest[0]!.data)).toEqual("body" in asked && asked.body)
        expect(JSON.parse(rest[0]!.data)).toEqual({ error: "RunNotFound", run: run.id, reason: `no run ${run.id}` })

        // The owner's goes on.
        run.publish(5, 5)
        expect(runSeqs(yield* Effect.promise(() => owning.reader.events((e) => e.id === "5")))).toEqual([5])
        expect(yield* eventually(() => srv.bus.subscribers(run.id) === 1)).toBe(true)
      }))

    it.scoped("a client that stops reading but keeps its connection open is disconnected once a write has waited the stall bound; the run and another client go on", () =>
      Effect.gen(function*() {
        // A subscription far larger than what is published: only the stalled write can drop it.
        const stall = 1_500
        const srv = yield* server({ sse: { buffer: 100_000, stall: `${stall} millis` } })
        const run = yield* simulatedRun(srv.bus, "alice", { pad: 4_000 })
        run.publish(1, 1)
        yield* run.commit(1)
        const reading = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        expect(runSeqs(yield* Effect.promise(() => reading.reader.events((e) => e.id === "1")))).toEqual([1])
        // A raw socket: it reads up to the first event, then stops reading and keeps the connection open.
        const stalled = yield* rawClient(eventsUrl(srv, run.id), bearer("sk_alice"), "id: 1\n")
        expect(yield* eventually(() => srv.bus.subscribers(run.id) === 2)).toBe(true)

        // The run publishes far more than the socket's buffers hold (about 40 MB), while the other client reads.
        const total = 10_000
        const read = yield* Effect.fork(Effect.promise(() => reading.reader.events((e) => e.id === String(total))))
        // When its subscription goes: watched from now on, whatever else the test waits for.
        const cut = yield* Effect.fork(Effect.gen(function*() {
          while (srv.bus.subscribers(run.id) > 1) yield* Effect.sleep("10 millis")
          return performance.now()
        }))
        for (let published = 1; published < total; published += 250) {
          run.publish(published + 1, Math.min(total, published + 250))
          yield* Effect.sleep("2 millis")
        }
        const published = performance.now()
        expectExactly(yield* Fiber.join(read), run, range(2, total))

        // Cut off: its subscription goes within the bound (its write stalled by the end of the
        // publishing at the latest), the check's period and the notice's grace; its socket is closed.
        const cutAt = yield* Fiber.join(cut).pipe(Effect.timeout("30 seconds"))
        expect(cutAt - published).toBeLessThan(stall * 1.25 + Duration.toMillis(Sse.STALL_GRACE) + 2_000)
        // It reads again: what the kernel held, then the end of the connection (destroyed, not ended).
        const rest = yield* Effect.promise(() => stalled.drain())
        expect(rest.closed).toBe(true)
        expect(rest.bytes).toBeGreaterThan(0)

        // The other client goes on.
        run.publish(total + 1, total + 3)
        expect(runSeqs(yield* Effect.promise(() => reading.reader.events((e) => e.id === String(total + 3))))).toEqual(
          range(total + 1, total + 3)
        )
      }))

    it.scoped("a client that stops reading is told it overflowed and disconnected; the run goes on; it resumes from there", () =>
      Effect.gen(function*() {
        // Big events and a small subscription, so that the socket's buffers fill and then the subscription.
        const srv = yield* server({ sse: { buffer: 16 } })
        const run = yield* simulatedRun(srv.bus, "alice", { pad: 4_000 })
        run.publish(1, 1)
        yield* run.commit(1)
        const slow = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        expect(runSeqs(yield* Effect.promise(() => slow.reader.events((e) => e.id === "1")))).toEqual([1])
        // And one event more, which it gets only once its follower is past its backlog (where an
        // overflow is forgiven: it is behind because the run is older than it) and follows live.
        run.publish(2, 2)
        yield* run.commit(2)
        expect(runSeqs(yield* Effect.promise(() => slow.reader.events((e) => e.id === "2")))).toEqual([2])
        expect(srv.bus.subscribers(run.id)).toBe(1)
        // It stops reading; the run publishes on, in bursts, as fast as it likes.
        let published = 2
        while (srv.bus.subscribers(run.id) > 0 && published < 50_000) {
          run.publish(published + 1, published + 200)
          published += 200
          yield* run.commit(published)
          yield* Effect.sleep("1 millis")
        }
        expect(srv.bus.subscribers(run.id)).toBe(0)
        // It reads again: what was in flight, then the overflow notice, then the end of the stream.
        const rest = yield* Effect.promise(() => slow.reader.events())
        const last = rest.at(-1)!
        expect(last.event).toBe("overflow")
        const notice = JSON.parse(last.data) as { lastEventId: number; reason: string }
        expect(notice.reason).toContain("Last-Event-ID")
        expectExactly(rest, run, range(3, notice.lastEventId))
        expect(notice.lastEventId).toBeLessThan(published)

        // Back with Last-Event-ID: the rest, once each.
        const back = yield* connect(eventsUrl(srv, run.id), { ...bearer("sk_alice"), "last-event-id": String(notice.lastEventId) })
        const finishing = yield* Effect.fork(Effect.zipRight(Effect.sleep("20 millis"), run.finish))
        const tail = yield* Effect.promise(() => back.reader.events())
        yield* Fiber.join(finishing)
        expectExactly(tail, run, range(notice.lastEventId + 1, published))
        expect(tail.at(-1)?.event).toBe("end")
      }))
  })
}
