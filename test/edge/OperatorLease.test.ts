/**
 * An operator's write of a live run's row (a pause, a resume: `RunManager.leaseChecked`) under the
 * run's lease, as the run's own writes are: it waits while the lease is being taken again, and is
 * refused — before it asks for a connection — once the lease is given up, the operator told so
 * (`Conflict`, saying why). Before, it was tried again for half a minute on a database refusing
 * connections, the lease long given up, and the operator told `Unavailable` only then. Postgres
 * only: the embedded database has no lease.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Option, TestClock } from "effect"
import { Principal } from "../../schemas/Auth.js"
import { leaseChecked } from "../../src/edge/RunManager.js"
import * as ControlAudit from "../../src/store/ControlAudit.js"
import * as Database from "../../src/store/Database.js"
import type { Lease } from "../../src/store/Lease.js"
import { migrate } from "../../src/store/Migrations.js"
import * as Runs from "../../src/store/Runs.js"
import { serverUrl } from "../store/fresh.js"
import { cuttable } from "../store/fixtures/pgProxy.js"

/** One turn of the event loop: what a connection refused by the proxy needs to be seen. */
const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** A migrated database reached through a proxy that, once `cutNow`, closes every connection and refuses new ones. */
const cutOff = Effect.gen(function*() {
  const direct = yield* Database.temporary(serverUrl!)
  const { cutNow, url } = yield* cuttable(direct)
  const context = yield* Layer.build(Database.layerWith({ url }))
  yield* migrate.pipe(Effect.provide(context))
  return { context, cutNow }
})

const alice = new Principal({ userId: "u_alice", name: "alice", role: "user" })

/** A lease this process lost its connection for: being taken again until `giveUp`, then given up. */
const retaking = (run: ReturnType<typeof Runs.newRunId>) => {
  let lost: string | undefined
  const lease: Lease = { run, backend: () => undefined, lost: () => lost }
  return { lease, giveUp: (why: string) => void (lost = why) }
}

const pauseUnder = (lease: Lease) =>
  leaseChecked(lease.run, lease, ControlAudit.record(lease.run, "pause", alice, {}, Runs.setStatus(lease.run, "paused", lease)))

describe.runIf(serverUrl !== undefined)("an operator's write of a live run under its lease, on Postgres", () => {
  it.scoped("is refused at once under a lease given up, on a database refusing connections, saying why", () =>
    Effect.gen(function*() {
      const { context, cutNow } = yield* cutOff
      const { giveUp, lease } = retaking(Runs.newRunId())
      giveUp("it could not be taken again within 5s (connection refused), so another process may take the run over")
      cutNow()
      const pausing = yield* Effect.fork(pauseUnder(lease).pipe(Effect.provide(context)))
      // No time passes: before, the write asked for a connection, refused, and was tried again for
      // half a minute by the clock.
      for (let i = 0; i < 50 && Option.isNone(yield* Fiber.poll(pausing)); i++) yield* turn
      const exit = Option.getOrUndefined(yield* Fiber.poll(pausing))
      const error = exit !== undefined && Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
      expect(error?._tag).toBe("Conflict")
      expect(error?._tag === "Conflict" && error.reason).toBe(
        `run ${lease.run} is no longer this server's to change: it does not hold the run's lease ` +
          `(it could not be taken again within 5s (connection refused), so another process may take the run over). Nothing was changed; ` +
          `the run stops here and goes on in the server that takes it over (ask again to reach that one)`
      )
      yield* Fiber.interrupt(pausing)
    }), { timeout: 60_000 })

  it.scoped("waits while the lease is being taken again, and is refused at its next try once it is given up", () =>
    Effect.gen(function*() {
      const { context, cutNow } = yield* cutOff
      const { giveUp, lease } = retaking(Runs.newRunId())
      cutNow()
      const pausing = yield* Effect.fork(pauseUnder(lease).pipe(Effect.provide(context)))
      // Being taken again: the write waits, tried again as for a blip.
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < 20; j++) yield* turn
        yield* TestClock.adjust("1 second")
      }
      expect(Option.isNone(yield* Fiber.poll(pausing))).toBe(true)
      giveUp("another process has taken it since")
      // Its next try, at most 2 s on: refused, where before it was tried for the rest of the half minute.
      for (let step = 0; step < 3 && Option.isNone(yield* Fiber.poll(pausing)); step++) {
        for (let j = 0; j < 20; j++) yield* turn
        yield* TestClock.adjust("1 second")
        for (let j = 0; j < 20; j++) yield* turn
      }
      const exit = Option.getOrUndefined(yield* Fiber.poll(pausing))
      const error = exit !== undefined && Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
      expect(error?._tag === "Conflict" && error.reason).toMatch(/does not hold the run's lease \(another process has taken it since\)\. Nothing was changed/)
      yield* Fiber.interrupt(pausing)
    }), { timeout: 60_000 })
})
