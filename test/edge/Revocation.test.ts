/**
 * A key revoked, a user disabled or enabled takes effect at once, through the RPC edge with the
 * server's own authenticator (its 30 s cache): on the server that made the change, the next request
 * with the key is answered as the database now says, and a stream the key has open ends
 * (`Unauthorized`) — no clock moved, streams re-checking only every hour here. On another server
 * sharing the database: with Redis, told through it, within a second; without, `runs.start` (which
 * asks the database) is refused at once, while a read may still be served from its cache for the
 * 30 s; with Redis, a message lost to the second server (its subscriber cut off) is made up for once
 * it is back: it forgets every cached answer. On every back-end (and Redis when it answers).
 */
import { RpcTest } from "@effect/rpc"
import { expect, layer } from "@effect/vitest"
import { Redis as IORedis } from "ioredis"
import { Duration, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { AdminRpcs, RunRpcs, StrategyRpcs } from "../../schemas/Rpc.js"
import * as AuthInvalidations from "../../src/bus/AuthInvalidations.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as Redis from "../../src/bus/Redis.js"
import { Recheck } from "../../src/edge/Auth.js"
import * as AuthLive from "../../src/edge/AuthLive.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { AdminHandlers, RunHandlers, StrategyHandlers } from "../../src/edge/RpcHandlers.js"
import * as RunEvents from "../../src/edge/RunEvents.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import * as Strategies from "../../src/store/Strategies.js"
import { cleanUp, freezingRedis, redisUrl, runRedis, uniquePrefix } from "../bus/redis.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"

const Group = RunRpcs.merge(AdminRpcs, StrategyRpcs)

/**
 * A server's handlers, run manager and authenticator (the real one, caching) in a scope of their
 * own, over the test's database and bus, forgetting through `invalidations`; clients of it with a key.
 */
const serverUp = <E>(invalidations: Layer.Layer<AuthInvalidations.AuthInvalidations, E>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(
      Layer.mergeAll(RunHandlers, AdminHandlers, StrategyHandlers, AuthenticatedLive).pipe(
        Layer.provideMerge(Layer.mergeAll(RunManager.layer, RunEvents.layer)),
        Layer.provideMerge(AuthLive.AuthenticatorLive.pipe(Layer.provide(invalidations))),
        // Streams re-check their key every hour: one that ends at once was woken by the change.
        Layer.provide(Layer.succeed(Recheck, Duration.hours(1)))
      ),
      scope
    )
    const client = (key: string) =>
      RpcTest.makeClient(Group, { flatten: true }).pipe(Effect.provide(Layer.merge(Layer.succeedContext(context), clientKey(key))))
    return { client }
  })

let made = 0
/** A user with a key, and a strategy of theirs; names of their own in each test. */
const userWithKey = (name: string, role: "admin" | "user" = "user") =>
  Effect.gen(function*() {
    const unique = `${name}${++made}`
    const { issued, user } = yield* ApiKeys.createUserWithKey(unique, role, "")
    yield* Strategies.create(user.id, smaStrategy(`${unique}'s`))
    return { id: user.id, name: unique, key: issued.key, keyId: issued.id, strategy: `${unique}'s` }
  })

const backtest = (strategy: string) => ({ strategy, mode: "backtest" as const, data: { _tag: "synthetic" as const, bars: 30 } })
const paper = (strategy: string) => ({ strategy, mode: "paper" as const, data: { _tag: "synthetic" as const, bars: 600 }, speed: 10 * 86_400 })

/** What a call failed with (its tag), or `ok`. */
const outcome = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.match(effect, { onFailure: (error) => error._tag, onSuccess: () => "ok" })

/** A run's events followed with `key` until the stream ends: how it ended. */
const following = <E extends { readonly _tag: string }>(events: Stream.Stream<unknown, E>) =>
  Effect.fork(Stream.runDrain(events).pipe(Effect.match({ onFailure: (error) => error._tag, onSuccess: () => "ended" })))

/** Within a second, or what it still was. */
const withinASecond = <A>(effect: Effect.Effect<A>, done: (a: A) => boolean) =>
  Effect.gen(function*() {
    const until = Date.now() + 1_000
    let last = yield* effect
    while (!done(last) && Date.now() < until) {
      yield* Effect.sleep("20 millis")
      last = yield* effect
    }
    return last
  })

/**
 * Two servers on one database without Redis, an admin and alice, and a paper run of hers started
 * and paused through the second (whose cache then holds her key).
 */
const twoServersWithPausedRun = Effect.gen(function*() {
  const a = yield* serverUp(AuthInvalidations.layerMemory)
  const b = yield* serverUp(AuthInvalidations.layerMemory)
  const root = yield* userWithKey("root", "admin")
  const alice = yield* userWithKey("alice")
  const onB = yield* b.client(alice.key)
  expect(yield* outcome(onB("strategies.list", undefined))).toBe("ok")
  const paused = yield* onB("runs.start", paper(alice.strategy))
  yield* onB("runs.pause", { run: paused.id })
  return { a, b, root, alice, onB, paused }
})

for (const backend of backends) {
  layer(Layer.merge(InProcessBus.layerTest(), backend.store), { timeout: startTimeout, excludeTestServices: true })(
    `revocation at once (${backend.name})`,
    (it) => {
      it.scoped("on the server that made it: a revoked key is refused at the next request and its open stream ends; a disabled user cannot start a run, enabled they can", () =>
        Effect.gen(function*() {
          const server = yield* serverUp(AuthInvalidations.layerMemory)
          const root = yield* userWithKey("root", "admin")
          const alice = yield* userWithKey("alice")
          const asRoot = yield* server.client(root.key)
          const asAlice = yield* server.client(alice.key)
          // Cached: the key has been answered for (and would be for 30 s).
          expect(yield* outcome(asAlice("strategies.list", undefined))).toBe("ok")
          const run = yield* asAlice("runs.start", paper(alice.strategy))
          const stream = yield* following(asAlice("runs.events", { run: run.id }))

          yield* asRoot("admin.revokeKey", { key: alice.keyId })
          expect(yield* outcome(asAlice("strategies.list", undefined))).toBe("Unauthorized")
          expect(yield* Fiber.join(stream).pipe(Effect.timeout("5 seconds"))).toBe("Unauthorized")

          // Another key of hers: disabled, she cannot start a run — nor read; enabled, she can at once.
          const { key } = yield* asRoot("admin.issueKey", { user: alice.name })
          const again = yield* server.client(key)
          expect(yield* outcome(again("strategies.list", undefined))).toBe("ok")
          yield* asRoot("admin.setUser", { user: alice.name, disabled: true })
          expect(yield* outcome(again("runs.start", backtest(alice.strategy)))).toBe("Unauthorized")
          expect(yield* outcome(again("strategies.list", undefined))).toBe("Unauthorized")
          yield* asRoot("admin.setUser", { user: alice.name, disabled: false })
          expect(yield* outcome(again("strategies.list", undefined))).toBe("ok")
          expect(yield* outcome(again("runs.start", backtest(alice.strategy)))).toBe("ok")
          yield* asRoot("runs.stop", { run: run.id })
        }), { timeout: 60_000 })

      it.scoped("an admin demoted is no admin at the next request", () =>
        Effect.gen(function*() {
          const server = yield* serverUp(AuthInvalidations.layerMemory)
          const root = yield* userWithKey("root", "admin")
          const other = yield* userWithKey("deputy", "admin")
          const asRoot = yield* server.client(root.key)
          const asOther = yield* server.client(other.key)
          expect(yield* outcome(asOther("admin.users", undefined))).toBe("ok")
          expect(yield* outcome(asOther("runs.list", {}))).toBe("ok")
          const started = yield* asRoot("runs.start", backtest(root.strategy))
          expect((yield* asOther("runs.list", {})).map((r) => r.id)).toContain(started.id)
          yield* asRoot("admin.setUser", { user: other.name, role: "user" })
          // A read served from the cache has the new role: not every run any more, their own.
          expect((yield* asOther("runs.list", {})).map((r) => r.id)).not.toContain(started.id)
          expect(yield* outcome(asOther("admin.users", undefined))).toBe("Forbidden")
        }), { timeout: 60_000 })

      it.scoped("two servers without Redis: disabled on the first, `runs.start` on the second is refused at once (a read may be served from its cache)", () =>
        Effect.gen(function*() {
          const { a, alice, b, onB, paused, root } = yield* twoServersWithPausedRun

          yield* (yield* a.client(root.key))("admin.setUser", { user: alice.name, disabled: true })
          // The second server was not told: its cache still answers a read for the key, for up to 30 s.
          expect(yield* outcome(onB("strategies.list", undefined))).toBe("ok")
          // Starting and resuming a run ask the database.
          expect(yield* outcome(onB("runs.start", backtest(alice.strategy)))).toBe("Unauthorized")
          expect(yield* outcome(onB("runs.resume", { run: paused.id }))).toBe("Unauthorized")
          // And its cache has the database's answer now.
          expect(yield* outcome(onB("strategies.list", undefined))).toBe("Unauthorized")

          yield* (yield* a.client(root.key))("admin.setUser", { user: alice.name, disabled: false })
          expect(yield* outcome(onB("runs.start", backtest(alice.strategy)))).toBe("ok")
          yield* (yield* b.client(root.key))("runs.stop", { run: paused.id })
        }), { timeout: 60_000 })

      it.scoped("two servers without Redis: every procedure that changes something asks the database, each with a key the second server has cached", () =>
        Effect.gen(function*() {
          const { a, alice, b, paused, root } = yield* twoServersWithPausedRun
          const writes: ReadonlyArray<(client: Effect.Effect.Success<ReturnType<typeof b.client>>) => Effect.Effect<unknown, { readonly _tag: string }>> = [
            (client) => client("strategies.create", { strategy: smaStrategy(`${alice.name}'s other`) }),
            (client) => client("strategies.update", { strategy: alice.strategy, body: smaStrategy(alice.strategy) }),
            (client) => client("strategies.delete", { strategy: alice.strategy }),
            (client) => client("runs.stop", { run: paused.id }),
            (client) => client("runs.pause", { run: paused.id })
          ]
          // A key of hers for each, each answered by the second server, so that its cache holds them all.
          const clients = yield* Effect.forEach(writes, () =>
            Effect.gen(function*() {
              const { key } = yield* ApiKeys.issue(alice.id)
              const client = yield* b.client(key)
              expect(yield* outcome(client("strategies.list", undefined))).toBe("ok")
              return client
            }))

          yield* (yield* a.client(root.key))("admin.setUser", { user: alice.name, disabled: true })
          for (const [i, write] of writes.entries()) expect(yield* outcome(write(clients[i]!)), `write ${i}`).toBe("Unauthorized")
          yield* (yield* b.client(root.key))("runs.stop", { run: paused.id })
        }), { timeout: 60_000 })
    }
  )

  if (runRedis) {
    const prefix = uniquePrefix("revocation")
    const redis = Redis.layerWith({ url: redisUrl, prefix })
    layer(Layer.merge(InProcessBus.layerTest(), backend.store), { timeout: startTimeout, excludeTestServices: true })(
      `revocation at once across servers with Redis (${backend.name})`,
      (it) => {
        it.scoped("revoked on the first server: refused on the second within a second, and its open stream there ends", () =>
          Effect.gen(function*() {
            yield* Effect.addFinalizer(() => Effect.promise(() => cleanUp(prefix)))
            // Each server its own Redis connections, as two processes have.
            const a = yield* serverUp(AuthInvalidations.layerRedis.pipe(Layer.provide(redis)))
            const b = yield* serverUp(AuthInvalidations.layerRedis.pipe(Layer.provide(redis)))
            // Both listening before anything is said (pub/sub keeps nothing for a late subscriber).
            const probe = new IORedis(redisUrl)
            yield* Effect.addFinalizer(() => Effect.sync(() => probe.disconnect()))
            const subscribers = Effect.promise(() => probe.pubsub("NUMSUB", AuthInvalidations.channelOf(prefix)).then((r) => Number(r[1])))
            expect(yield* withinASecond(subscribers, (n) => n >= 2)).toBe(2)

            const root = yield* userWithKey("root", "admin")
            const alice = yield* userWithKey("alice")
            const onB = yield* b.client(alice.key)
            expect(yield* outcome(onB("strategies.list", undefined))).toBe("ok")
            const run = yield* onB("runs.start", paper(alice.strategy))
            const stream = yield* following(onB("runs.events", { run: run.id }))

            yield* (yield* a.client(root.key))("admin.revokeKey", { key: alice.keyId })
            expect(yield* withinASecond(outcome(onB("strategies.list", undefined)), (o) => o === "Unauthorized")).toBe("Unauthorized")
            expect(yield* Fiber.join(stream).pipe(Effect.timeout("1 second"))).toBe("Unauthorized")
            yield* (yield* b.client(root.key))("runs.stop", { run: run.id })
          }), { timeout: 60_000 })

        it.scoped("revoked on the first server while the second's subscriber is cut off (the message lost to it): refused on the second once it is back, not 30 s later, and its open stream there ends", () =>
          Effect.gen(function*() {
            yield* Effect.addFinalizer(() => Effect.promise(() => cleanUp(prefix)))
            const proxy = yield* freezingRedis
            const a = yield* serverUp(AuthInvalidations.layerRedis.pipe(Layer.provide(redis)))
            const b = yield* serverUp(AuthInvalidations.layerRedis.pipe(Layer.provide(Redis.layerWith({ url: proxy.url, prefix }))))
            const probe = new IORedis(redisUrl)
            yield* Effect.addFinalizer(() => Effect.sync(() => probe.disconnect()))
            const subscribers = Effect.promise(() => probe.pubsub("NUMSUB", AuthInvalidations.channelOf(prefix)).then((r) => Number(r[1])))
            expect(yield* withinASecond(subscribers, (n) => n >= 2)).toBe(2)
            yield* Effect.sleep("100 millis")

            const root = yield* userWithKey("root", "admin")
            const alice = yield* userWithKey("alice")
            const onB = yield* b.client(alice.key)
            // Cached on the second server, and a stream open there with the key.
            expect(yield* outcome(onB("strategies.list", undefined))).toBe("ok")
            const run = yield* onB("runs.start", paper(alice.strategy))
            const stream = yield* following(onB("runs.events", { run: run.id }))
            // The second's connections hear nothing, then are cut (CLIENT KILL, a blip): the message is lost to it.
            yield* proxy.freeze
            yield* (yield* a.client(root.key))("admin.revokeKey", { key: alice.keyId })
            yield* Effect.sleep("100 millis")
            yield* proxy.cut
            yield* proxy.thaw
            // Before, its cached answer let the key in for the rest of the cache's 30 s.
            const until = Date.now() + 5_000
            let last = yield* outcome(onB("strategies.list", undefined))
            while (last !== "Unauthorized" && Date.now() < until) {
              yield* Effect.sleep("50 millis")
              last = yield* outcome(onB("strategies.list", undefined))
            }
            expect(last).toBe("Unauthorized")
            // Its open stream ends too (it re-checks its key every hour here: woken by the forgetting).
            expect(yield* Fiber.join(stream).pipe(Effect.timeout("2 seconds"))).toBe("Unauthorized")
            yield* (yield* b.client(root.key))("runs.stop", { run: run.id })
          }), { timeout: 60_000 })
      }
    )
  }
}
