/**
 * Authentication at the edge: the cached `Authenticator` answers a burst of requests with one key
 * from one lookup; sees a revocation (a disabled user, a new role) it is told of (`forgetUser`) at
 * the next request, and one it is not told of within its 30 s and not before, but for
 * `authenticateNow`, which asks the database; never caches a failing database, and refuses every
 * bad key alike without writing; the first
 * start on an empty database makes exactly one admin, however many processes start together.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it as plain, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, TestClock, TestContext } from "effect"
import { Principal, Unauthorized } from "../../schemas/Auth.js"
import { RpcTest } from "@effect/rpc"
import { StrategyRpcs } from "../../schemas/Rpc.js"
import { Authenticator } from "../../src/edge/Auth.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { StrategyHandlers } from "../../src/edge/RpcHandlers.js"
import * as Fixtures from "./fixtures.js"
import * as AuthLive from "../../src/edge/AuthLive.js"
import * as AuthInvalidations from "../../src/bus/AuthInvalidations.js"
import { bootstrap } from "../../src/edge/Bootstrap.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import * as Database from "../../src/store/Database.js"
import { migrate } from "../../src/store/Migrations.js"
import { StoreError } from "../../src/store/StoreError.js"
import * as Users from "../../src/store/Users.js"
import { backends, freshPostgresUrl, startTimeout } from "../store/fixtures/backends.js"
import { failure } from "../store/fixtures/checks.js"
import { authTables, hostileKeys, refusal } from "../store/fixtures/keys.js"

const authenticate = (key: string) => Effect.flatMap(Authenticator, (auth) => auth.authenticate(key))
const authenticateNow = (key: string) => Effect.flatMap(Authenticator, (auth) => auth.authenticateNow(key))
const forgetUser = (userId: string) => Effect.flatMap(Authenticator, (auth) => auth.forgetUser(userId))

/** The server's authenticator, alone in its process (no Redis to hear other servers from). */
const authenticatorLive = AuthLive.AuthenticatorLive.pipe(Layer.provide(AuthInvalidations.layerMemory))

/** The body on a `TestClock` (the database layers run on the live clock: `excludeTestServices`). */
const onTestClock = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, TestContext.TestContext)

describe("the cache (a counted lookup, no database)", () => {
  const alice = new Principal({ userId: "usr_a", name: "alice", role: "user" })
  const key = `sk_${"A".repeat(43)}`
  const other = `sk_${"B".repeat(43)}`

  /** An authenticator whose lookup knows `key` as alice (or fails as `answer` says), counting its calls. */
  const counted = (answer: (keyHash: string) => Effect.Effect<Principal, Unauthorized | StoreError> = (keyHash) =>
    keyHash === ApiKeys.hashKey(key) ? Effect.succeed(alice) : Effect.fail(refusal)
  ) =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const auth = yield* AuthLive.make((keyHash) =>
        Effect.suspend(() => {
          calls.push(keyHash)
          // A little latency, so that concurrent requests overlap the lookup.
          return Effect.zipRight(Effect.yieldNow(), answer(keyHash))
        })
      )
      return { auth, calls }
    })

  plain.effect("a burst with one key (an SSE reconnect storm) is one lookup, by the key's hash; again after the TTL", () =>
    Effect.gen(function*() {
      const { auth, calls } = yield* counted()
      const answers = yield* Effect.all(Array.from({ length: 200 }, () => auth.authenticate(key)), { concurrency: "unbounded" })
      expect(answers.every((p) => p === alice)).toBe(true)
      expect(calls).toEqual([ApiKeys.hashKey(key)])
      yield* TestClock.adjust("29 seconds")
      yield* auth.authenticate(key)
      expect(calls.length).toBe(1)
      yield* TestClock.adjust("2 seconds")
      yield* auth.authenticate(key)
      expect(calls.length).toBe(2)
    }))

  plain.effect("holder (a request log's user): a key's principal once it authenticated, from the cache alone; none once forgotten, refused or unknown", () =>
    Effect.gen(function*() {
      const { auth, calls } = yield* counted()
      expect(yield* auth.holder!(key)).toBeUndefined()
      yield* auth.authenticate(key)
      expect(yield* auth.holder!(key)).toEqual(alice)
      yield* failure(auth.authenticate(other))
      expect(yield* auth.holder!(other)).toBeUndefined()
      expect(yield* auth.holder!("sk_short")).toBeUndefined()
      yield* auth.forgetUser(alice.userId)
      expect(yield* auth.holder!(key)).toBeUndefined()
      // It never asks the database.
      expect(calls.length).toBe(2)
    }))

  plain.effect("a refusal is cached as long; a malformed key never reaches the lookup", () =>
    Effect.gen(function*() {
      const { auth, calls } = yield* counted()
      for (let i = 0; i < 5; i++) expect(yield* failure(auth.authenticate(other))).toEqual(refusal)
      expect(calls.length).toBe(1)
      for (const bad of ["", "Bearer x", key.slice(1), `${key} `, "x".repeat(100_000), `sk_${"é".repeat(43)}`]) {
        expect(yield* failure(auth.authenticate(bad))).toEqual(refusal)
      }
      expect(calls.length).toBe(1)
      yield* TestClock.adjust("31 seconds")
      yield* failure(auth.authenticate(other))
      expect(calls.length).toBe(2)
    }))

  plain.effect("a failing database is Unavailable, not a refusal, and is asked again by the next request", () =>
    Effect.gen(function*() {
      let down = true
      const { auth, calls } = yield* counted((keyHash) =>
        down ? Effect.fail(new StoreError({ operation: "authenticate an API key", reason: "connection refused" })) : keyHash === ApiKeys.hashKey(key) ? Effect.succeed(alice) : Effect.fail(refusal)
      )
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(auth.authenticate(key))
        expect(error._tag).toBe("Unavailable")
      }
      expect(calls.length).toBe(3)
      down = false
      expect(yield* auth.authenticate(key)).toBe(alice)
      expect(calls.length).toBe(4)
    }))

  plain.effect("a caller interrupted during the lookup leaves the others with one key their answer, and the cache its answer", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const { auth, calls } = yield* counted((keyHash) =>
        Effect.zipRight(Deferred.await(release), keyHash === ApiKeys.hashKey(key) ? Effect.succeed(alice) : Effect.fail(refusal))
      )
      // The first caller makes the lookup; the second waits on it (an SSE stream re-checking the key).
      const first = yield* Effect.fork(auth.authenticate(key))
      yield* Effect.yieldNow()
      const second = yield* Effect.fork(auth.authenticate(key))
      yield* Effect.yieldNow()
      expect(calls).toEqual([ApiKeys.hashKey(key)])
      // The first caller goes (its RPC stream ended) at once, while the lookup is still on.
      expect(Exit.isInterrupted(yield* Fiber.interrupt(first))).toBe(true)
      yield* Deferred.succeed(release, void 0)
      expect(yield* Fiber.await(second)).toEqual(Exit.succeed(alice))
      expect(yield* auth.authenticate(key)).toBe(alice)
      expect(calls.length).toBe(1)
    }))

  plain.effect("forgetting a user drops their answers and every refusal at once, not another user's; a stream waiting on the next change is woken", () =>
    Effect.gen(function*() {
      const bob = new Principal({ userId: "usr_b", name: "bob", role: "user" })
      let alicesNow: Principal | undefined = alice
      const { auth, calls } = yield* counted((keyHash) =>
        keyHash === ApiKeys.hashKey(key)
          ? alicesNow === undefined ? Effect.fail(refusal) : Effect.succeed(alicesNow)
          : keyHash === ApiKeys.hashKey(other) ? Effect.succeed(bob) : Effect.fail(refusal)
      )
      const stranger = `sk_${"C".repeat(43)}`
      expect(yield* auth.authenticate(key)).toBe(alice)
      expect(yield* auth.authenticate(other)).toBe(bob)
      yield* failure(auth.authenticate(stranger))
      expect(calls.length).toBe(3)
      const woken = auth.nextChange()
      const waiting = yield* Effect.fork(woken)
      // Alice disabled: forgotten, and refused at the next request — no clock moved.
      alicesNow = undefined
      yield* auth.forgetUser(alice.userId)
      expect(yield* Fiber.join(waiting)).toBeUndefined()
      expect(yield* failure(auth.authenticate(key))).toEqual(refusal)
      // Bob's answer stays; the stranger's refusal is asked again (a refusal does not say whose key it was).
      expect(yield* auth.authenticate(other)).toBe(bob)
      yield* failure(auth.authenticate(stranger))
      expect(calls).toEqual([key, other, stranger, key, stranger].map(ApiKeys.hashKey))
      // Enabled again: her cached refusal goes as well.
      alicesNow = alice
      yield* auth.forgetUser(alice.userId)
      expect(yield* auth.authenticate(key)).toBe(alice)
      expect(calls.length).toBe(6)
    }))

  plain.effect("an answer whose lookup began before a forgetting is not kept, even if it came after", () =>
    Effect.gen(function*() {
      const read = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      let alicesNow: Principal | undefined = alice
      let first = true
      const { auth, calls } = yield* counted((keyHash) => {
        if (keyHash !== ApiKeys.hashKey(key)) return Effect.fail(refusal)
        // The first lookup reads the database before the change, and answers after it is forgotten.
        const answer = alicesNow
        if (!first) return answer === undefined ? Effect.fail(refusal) : Effect.succeed(answer)
        first = false
        return Effect.zipRight(Deferred.succeed(read, void 0), Deferred.await(release)).pipe(
          Effect.zipRight(answer === undefined ? Effect.fail(refusal) : Effect.succeed(answer))
        )
      })
      const asked = yield* Effect.fork(auth.authenticate(key))
      yield* Deferred.await(read)
      alicesNow = undefined
      yield* auth.forgetUser(alice.userId)
      yield* Deferred.succeed(release, void 0)
      // The request in flight gets the answer as the database now has it, and so does the next.
      expect(yield* Effect.flip(Fiber.join(asked))).toEqual(refusal)
      expect(yield* failure(auth.authenticate(key))).toEqual(refusal)
      expect(calls.length).toBe(2)
    }))

  plain.effect("authenticateNow asks the lookup every time, and gives the cache its answer", () =>
    Effect.gen(function*() {
      let alicesNow: Principal | undefined = alice
      const { auth, calls } = yield* counted((keyHash) =>
        keyHash === ApiKeys.hashKey(key) && alicesNow !== undefined ? Effect.succeed(alicesNow) : Effect.fail(refusal)
      )
      expect(yield* auth.authenticate(key)).toBe(alice)
      // Disabled through another process, which could not tell this one.
      alicesNow = undefined
      expect(yield* auth.authenticate(key)).toBe(alice)
      expect(yield* Effect.flip(auth.authenticateNow(key))).toEqual(refusal)
      expect(yield* failure(auth.authenticate(key))).toEqual(refusal)
      expect(calls.length).toBe(2)
      expect(yield* Effect.flip(auth.authenticateNow(`${key} `))).toEqual(refusal)
      expect(calls.length).toBe(2)
    }))

  plain.effect("authenticateNow with the database down is Unavailable, never the cached answer", () =>
    Effect.gen(function*() {
      let down = false
      const { auth } = yield* counted((keyHash) =>
        down ? Effect.fail(new StoreError({ operation: "authenticate an API key", reason: "connection refused" })) : keyHash === ApiKeys.hashKey(key) ? Effect.succeed(alice) : Effect.fail(refusal)
      )
      expect(yield* auth.authenticate(key)).toBe(alice)
      down = true
      expect((yield* Effect.flip(auth.authenticateNow(key)))._tag).toBe("Unavailable")
      // The cache is left as it was for the requests that use it.
      expect(yield* auth.authenticate(key)).toBe(alice)
    }))

  plain.effect("the cache is bounded: past its capacity the least recently used answers go", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const auth = yield* AuthLive.make((keyHash) => Effect.sync(() => calls.push(keyHash)).pipe(Effect.zipRight(Effect.fail(refusal))), { capacity: 10 })
      const keys = Array.from({ length: 50 }, (_, i) => `sk_${String(i).padStart(43, "x")}`)
      for (const k of keys) yield* failure(auth.authenticate(k))
      expect(calls.length).toBe(50)
      yield* failure(auth.authenticate(keys[0]!))
      expect(calls.length).toBe(51)
    }))
})

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`AuthenticatorLive (${backend.name})`, (it) => {
    it.effect("a key authenticates; revoked where this process is not told (another server without Redis), it still does from the cache for up to 30 s, then not", () =>
      onTestClock(Effect.gen(function*() {
        const ivy = yield* Users.create("ivy")
        const k = yield* ApiKeys.issue(ivy.id, "sse")
        const principal = new Principal({ userId: ivy.id, name: "ivy", role: "user" })
        expect(yield* authenticate(k.key)).toEqual(principal)
        yield* ApiKeys.revoke(k.id, ivy.id)
        expect(yield* failure(ApiKeys.authenticate(k.key))).toEqual(refusal) // the database knows at once
        expect(yield* authenticate(k.key)).toEqual(principal) // the cache, not yet
        yield* TestClock.adjust("29 seconds")
        expect(yield* authenticate(k.key)).toEqual(principal)
        yield* TestClock.adjust("2 seconds")
        expect(yield* failure(authenticate(k.key))).toEqual(refusal)
        // A new key of the same user is not held back by the other's cached refusal.
        const fresh = yield* ApiKeys.issue(ivy.id)
        expect(yield* authenticate(fresh.key)).toEqual(principal)
      }).pipe(Effect.provide(authenticatorLive))))

    it.effect("a disabled user and a changed role this process is not told of are seen within the TTL", () =>
      onTestClock(Effect.gen(function*() {
        const jack = yield* Users.create("jack")
        const k = yield* ApiKeys.issue(jack.id)
        expect((yield* authenticate(k.key)).role).toBe("user")
        yield* Users.setRole(jack.id, "admin")
        expect((yield* authenticate(k.key)).role).toBe("user")
        yield* TestClock.adjust("31 seconds")
        expect((yield* authenticate(k.key)).role).toBe("admin")
        yield* Users.disable(jack.id)
        expect((yield* authenticate(k.key)).role).toBe("admin")
        yield* TestClock.adjust("31 seconds")
        expect(yield* failure(authenticate(k.key))).toEqual(refusal)
        yield* Users.enable(jack.id)
        yield* TestClock.adjust("31 seconds")
        expect((yield* authenticate(k.key)).userId).toBe(jack.id)
      }).pipe(Effect.provide(authenticatorLive))))

    it.effect("a key revoked, a user disabled, enabled or given a new role, and forgotten: seen at the next request, no clock moved", () =>
      onTestClock(Effect.gen(function*() {
        const max = yield* Users.create("max")
        const k = yield* ApiKeys.issue(max.id)
        const spare = yield* ApiKeys.issue(max.id)
        expect((yield* authenticate(k.key)).role).toBe("user")
        yield* Users.setRole(max.id, "admin")
        yield* forgetUser(max.id)
        expect((yield* authenticate(k.key)).role).toBe("admin")
        yield* Users.disable(max.id)
        yield* forgetUser(max.id)
        expect(yield* failure(authenticate(k.key))).toEqual(refusal)
        expect(yield* failure(authenticate(spare.key))).toEqual(refusal)
        yield* Users.enable(max.id)
        yield* forgetUser(max.id)
        expect((yield* authenticate(k.key)).userId).toBe(max.id)
        yield* ApiKeys.revoke(k.id, max.id)
        yield* forgetUser(max.id)
        expect(yield* failure(authenticate(k.key))).toEqual(refusal)
        expect((yield* authenticate(spare.key)).userId).toBe(max.id)
      }).pipe(Effect.provide(authenticatorLive))))

    it.effect("not forgotten (changed through another server without Redis): authenticate keeps the cached answer, authenticateNow asks the database", () =>
      onTestClock(Effect.gen(function*() {
        const noa = yield* Users.create("noa")
        const k = yield* ApiKeys.issue(noa.id)
        expect((yield* authenticate(k.key)).userId).toBe(noa.id)
        yield* Users.disable(noa.id)
        expect((yield* authenticate(k.key)).userId).toBe(noa.id)
        expect(yield* failure(authenticateNow(k.key))).toEqual(refusal)
        // And this process's cache has the database's answer now.
        expect(yield* failure(authenticate(k.key))).toEqual(refusal)
        yield* Users.enable(noa.id)
        expect((yield* authenticateNow(k.key)).userId).toBe(noa.id)
        expect((yield* authenticate(k.key)).userId).toBe(noa.id)
      }).pipe(Effect.provide(authenticatorLive))))

    it.effect("every hostile key is the same Unauthorized through the edge, and nothing is written", () =>
      Effect.gen(function*() {
        const kate = yield* Users.create("kate")
        const valid = yield* ApiKeys.issue(kate.id)
        yield* ApiKeys.authenticate(valid.key)
        const keys = hostileKeys(valid.key)
        expect(keys.length).toBeGreaterThanOrEqual(200)
        const before = yield* authTables
        for (const key of keys) {
          const error = yield* failure(authenticate(key))
          expect({ key: key.slice(0, 60), error: { _tag: error._tag, reason: error.reason } })
            .toEqual({ key: key.slice(0, 60), error: { _tag: "Unauthorized", reason: refusal.reason } })
        }
        expect(yield* authTables).toEqual(before)
        expect((yield* authenticate(valid.key)).userId).toBe(kate.id)
      }).pipe(Effect.provide(authenticatorLive)))
  })

  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`bootstrap (${backend.name})`, (it) => {
    const admins = Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ id: string; name: string; role: string; keys: number }>`
        select u.id, u.name, u.role, (select count(*)::int from api_keys k where k.user_id = u.id) as keys
        from users u where u.id <> ${Users.LOCAL} order by u.name`)
    const reset = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`delete from users`)

    it.effect("an empty database: one admin with one key, however many start together; then nothing", () =>
      Effect.gen(function*() {
        const results = yield* Effect.all(Array.from({ length: 6 }, () => bootstrap()), { concurrency: "unbounded" })
        const created = results.filter((r) => r.created)
        expect(created.length).toBe(1)
        const first = created[0]!
        if (!first.created) throw new Error("unreachable")
        expect(first.name).toBe("admin")
        expect(first.key).toMatch(/^sk_[A-Za-z0-9_-]{43}$/)
        expect(yield* admins).toEqual([{ id: first.userId, name: "admin", role: "admin", keys: 1 }])
        expect(yield* ApiKeys.authenticate(first.key)).toEqual(new Principal({ userId: first.userId, name: "admin", role: "admin" }))
        expect((yield* ApiKeys.list(first.userId))[0]!.label).toBe("bootstrap")

        const before = yield* authTables
        expect(yield* bootstrap()).toEqual({ created: false })
        expect(yield* authTables).toEqual(before)
      }))

    it.effect("only `local` (the command line's): an admin is made, once", () =>
      Effect.gen(function*() {
        yield* reset
        yield* Users.ensureLocal()
        const results = yield* Effect.all(Array.from({ length: 4 }, () => bootstrap()), { concurrency: "unbounded" })
        expect(results.filter((r) => r.created).length).toBe(1)
        expect((yield* admins).map((a) => [a.name, a.role, a.keys])).toEqual([["admin", "admin", 1]])
        expect(yield* bootstrap()).toEqual({ created: false })
      }))

    it.effect("any other user, even a disabled one or no admin at all: nothing is made", () =>
      Effect.gen(function*() {
        yield* reset
        yield* Users.ensureLocal()
        const lee = yield* Users.create("lee")
        yield* Users.disable(lee.id)
        const before = yield* authTables
        expect(yield* bootstrap()).toEqual({ created: false })
        expect(yield* authTables).toEqual(before)
      }))

    if (backend.name === "postgres") {
      it.effect("two processes (two pools) on one empty Postgres database: one admin", () =>
        Effect.scoped(Effect.gen(function*() {
          const url = yield* freshPostgresUrl
          const processes = yield* Effect.all(
            [1, 2, 3].map(() => Layer.build(Database.layerWith({ url, maxConnections: 2 }))),
            { concurrency: "unbounded" }
          )
          yield* Effect.orDie(migrate).pipe(Effect.provide(processes[0]!))
          const results = yield* Effect.all(
            processes.flatMap((context) => [bootstrap(), bootstrap()].map((b) => Effect.provide(b, context))),
            { concurrency: "unbounded" }
          )
          expect(results.filter((r) => r.created).length).toBe(1)
          expect((yield* admins.pipe(Effect.provide(processes[2]!))).map((a) => [a.name, a.keys])).toEqual([["admin", 1]])
        })))
    }
  })
}

/** An authenticator whose database is down, as AuthLive reports it. */
const down = Layer.effect(
  Authenticator,
  AuthLive.make(() => Effect.fail(new StoreError({ operation: "authenticate an API key", reason: "connection refused" })))
)
const goodKey = `sk_${"B".repeat(43)}`

layer(
  Layer.mergeAll(StrategyHandlers, AuthenticatedLive).pipe(Layer.provideMerge(Layer.merge(down, backends[0]!.store))),
  { timeout: startTimeout, excludeTestServices: true }
)("keys while the database is down", (it) => {
  it.scoped("SSE answers 503 and RPC Unavailable, never 401: a client must not throw away a good key", () =>
    Effect.gen(function*() {
      const server = yield* Fixtures.server()
      const sse = yield* Effect.promise(() => fetch(Fixtures.eventsUrl(server, "run_x"), { headers: Fixtures.bearer(goodKey) }))
      expect(sse.status).toBe(503)
      expect(yield* Effect.promise(() => sse.json())).toMatchObject({ error: "Unavailable" })
      const client = yield* Effect.provide(RpcTest.makeClient(StrategyRpcs, { flatten: true }), clientKey(goodKey))
      const error = yield* Effect.flip(client("strategies.list", undefined))
      expect(error._tag).toBe("Unavailable")
    }))
})
