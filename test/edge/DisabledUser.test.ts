/**
 * Disabling a user stops their trading: `admin.setUser { disabled: true }` pauses each of their
 * running paper runs — live in this process, or in no live process (its row) — as the admin, with
 * `user <name> disabled` in the run's control log, and names them in its answer; their backtests
 * finish, other users' runs go on. While they are disabled nothing sets those runs going again: a
 * restart takes them back paused and says why (also a run whose row still said running), and the
 * user's key, were it still accepted (a stub here; a server not told of the change caches a key's
 * answer for 30 s), can neither resume them nor start another. Enabled again, the user resumes
 * them. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { RpcTest } from "@effect/rpc"
import { Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import { Principal } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import { AdminRpcs, RunRpcs } from "../../schemas/Rpc.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import { Recheck } from "../../src/edge/Auth.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { AdminHandlers, RunHandlers } from "../../src/edge/RpcHandlers.js"
import * as RunEvents from "../../src/edge/RunEvents.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as ControlAudit from "../../src/store/ControlAudit.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as Users from "../../src/store/Users.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { createUsers, guarded, principals, stubAuthenticator, until } from "./fixtures.js"

const alice = principals["sk_alice"]
const bob = principals["sk_bob"]
const carol = new Principal({ userId: "carol", name: "carol", role: "user" })

const Group = RunRpcs.merge(AdminRpcs)

/**
 * A server's run manager and RPC handlers in a scope of their own (closing it is the server shutting
 * down), and clients of it acting with a stub key: a disabled user's key still authenticates, as a
 * real one does while the edge's cache holds it.
 */
const serverUp = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const context = yield* Layer.buildWithScope(
    Layer.mergeAll(RunHandlers, AdminHandlers, AuthenticatedLive).pipe(
      Layer.provideMerge(Layer.mergeAll(RunManager.layer, RunEvents.layer)),
      Layer.provide(Layer.mergeAll(stubAuthenticator, Layer.succeed(Recheck, Duration.millis(20))))
    ),
    scope
  )
  // Shut down with the test, whatever it did: a failed test leaves no run live for the next.
  yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
  const client = (key: keyof typeof principals) =>
    RpcTest.makeClient(Group, { flatten: true }).pipe(Effect.provide(Layer.merge(Layer.succeedContext(context), clientKey(key))))
  return { manager: Context.get(context, RunManager.RunManager), client, shutdown: Scope.close(scope, Exit.void) }
})

/** A paper run of `owner`'s strategy `name`, ten bars a second for a minute: it is running throughout the test. */
const paperRun = (manager: RunManager.RunManagerService, owner: Principal, name: string) =>
  Effect.zipRight(
    Strategies.create(owner.userId, smaStrategy(name)),
    manager.start(owner, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 10 * 86_400 })
  )

const usersLayer = Layer.effectDiscard(Effect.orDie(Effect.gen(function*() {
  yield* createUsers
  const sql = yield* SqlClient.SqlClient
  yield* sql`insert into users (id, name, role) values ('carol', 'carol', 'user') on conflict (id) do nothing`
})))

for (const backend of backends) {
  const environment = Layer.mergeAll(InProcessBus.layerTest(), usersLayer).pipe(Layer.provideMerge(backend.store))
  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`disabling a user (${backend.name})`, (it) => {
    it.scoped("pauses their running paper runs as the admin and says which; a restart keeps them paused; enabled, the user resumes them", () =>
      Effect.gen(function*() {
        const first = yield* serverUp
        const paper = yield* paperRun(first.manager, alice, "disabled paper")
        // A backtest waiting on an approval: running, and no live book to stop.
        yield* Strategies.create(alice.userId, guarded("disabled backtest", 600))
        const backtest = yield* first.manager.start(alice, { strategy: "disabled backtest", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
        yield* until(first.manager.pending(alice, backtest.id), (p) => p.length > 0, "the backtest's approval")
        const others = yield* paperRun(first.manager, bob, "another's paper")

        const root = yield* first.client("sk_root")
        const changed = yield* root("admin.setUser", { user: "alice", disabled: true })
        expect(changed).toEqual({ id: "alice", name: "alice", role: "user", disabled: true, paused: [{ id: paper.id, ref: "disabled paper#1" }] })
        const got = yield* root("runs.get", { run: paper.id })
        expect(got.status).toBe("paused")
        expect(got.control?.last).toEqual([
          { action: "pause", by: { id: "root", name: "root" }, at: expect.any(Date), reason: "user alice disabled" }
        ])
        // Their backtest finishes as it would; another user's run trades on.
        expect((yield* Runs.get(backtest.id)).status).toBe("running")
        expect((yield* Runs.get(others.id)).status).toBe("running")
        // Their key, still accepted for a moment, cannot set it going again.
        const asAlice = yield* first.client("sk_alice")
        expect(yield* Effect.flip(asAlice("runs.resume", { run: paper.id }))).toMatchObject({
          _tag: "Conflict",
          reason: "user alice is disabled: an admin enables them first"
        })
        // Nor loosen its trading state; halting it only takes risk away, and a paused run takes it at once (it stays paused).
        expect(yield* Effect.flip(asAlice("runs.trading", { run: paper.id, state: "active" }))).toMatchObject({
          _tag: "Conflict",
          reason: "user alice is disabled: an admin enables them first"
        })
        expect((yield* asAlice("runs.trading", { run: paper.id, state: "halted" })).transition).toMatchObject({ from: "active", to: "halted", actor: "alice" })
        expect((yield* Runs.get(paper.id)).status).toBe("paused")
        // Nor start another: the run manager asks the database whoever let the request in.
        expect(yield* Effect.flip(asAlice("runs.start", { strategy: "disabled paper", mode: "paper", data: { _tag: "synthetic", bars: 600 } }))).toMatchObject({
          _tag: "Conflict",
          reason: "user alice is disabled: an admin enables them first"
        })
        // Disabled again: nothing more to pause.
        expect(yield* root("admin.setUser", { user: "alice", disabled: true })).toMatchObject({ disabled: true, paused: [] })
        yield* first.manager.stop(alice, backtest.id)

        // The server restarts with alice disabled: her run comes back paused, and the start-up says why.
        yield* first.shutdown
        const second = yield* serverUp
        const resumed = yield* second.manager.resumeUnfinished()
        const mine = resumed.find((o) => o.run === paper.id)
        expect(mine).toEqual({ run: paper.id, ref: "disabled paper#1", outcome: "resumed", ownerDisabled: "alice" })
        expect(RunManager.describeResumption(mine!)).toBe(
          `resumed run ${paper.id} (disabled paper#1), paused: its owner alice is disabled (it stays paused until they are enabled and resume it)`
        )
        expect(resumed.find((o) => o.run === others.id)).toEqual({ run: others.id, ref: "another's paper#1", outcome: "resumed" })
        expect((yield* Runs.get(paper.id)).status).toBe("paused")

        // Enabled again: still paused (nothing resumes it but the user), until she resumes it.
        const root2 = yield* second.client("sk_root")
        expect(yield* root2("admin.setUser", { user: "alice", disabled: false })).toEqual({ id: "alice", name: "alice", role: "user", disabled: false })
        expect((yield* Runs.get(paper.id)).status).toBe("paused")
        const alice2 = yield* second.client("sk_alice")
        expect((yield* alice2("runs.resume", { run: paper.id })).status).toBe("running")
        expect((yield* ControlAudit.history(paper.id as RunId)).last.map((a) => [a.action, a.by.name, a.reason])).toEqual([
          ["pause", "root", "user alice disabled"],
          ["trading", "alice", "halted by alice"],
          ["resume", "alice", undefined]
        ])
        yield* second.manager.stop(alice, paper.id)
        yield* second.manager.stop(bob, others.id)
        yield* second.shutdown
      }), { timeout: 120_000 })

    it.scoped("a run in no live process is paused in its row; one whose row still says running comes back paused at the next start, the server naming itself", () =>
      Effect.gen(function*() {
        const first = yield* serverUp
        const bobs = yield* paperRun(first.manager, bob, "suspended paper")
        const carols = yield* paperRun(first.manager, carol, "carol's paper")
        // Suspended by a shutdown: running, in no live process.
        yield* first.shutdown
        expect((yield* Runs.get(bobs.id)).status).toBe("running")

        const second = yield* serverUp
        const root = yield* second.client("sk_root")
        // Before the start-up resumes it: its row is paused, and the admin's pause logged.
        expect(yield* root("admin.setUser", { user: "bob", disabled: true })).toMatchObject({ paused: [{ id: bobs.id, ref: "suspended paper#1" }] })
        expect((yield* Runs.get(bobs.id)).status).toBe("paused")
        // Carol disabled where no server could pause her run (the store directly): its row says running.
        yield* Users.change("carol", { disabled: true })
        expect((yield* Runs.get(carols.id)).status).toBe("running")

        const resumed = yield* second.manager.resumeUnfinished()
        expect(resumed).toEqual(expect.arrayContaining([
          { run: bobs.id, ref: "suspended paper#1", outcome: "resumed", ownerDisabled: "bob" },
          { run: carols.id, ref: "carol's paper#1", outcome: "resumed", ownerDisabled: "carol" }
        ]))
        expect((yield* Runs.get(bobs.id)).status).toBe("paused")
        expect((yield* Runs.get(carols.id)).status).toBe("paused")
        expect((yield* ControlAudit.history(bobs.id as RunId)).last.map((a) => [a.action, a.by.name, a.reason])).toEqual([["pause", "root", "user bob disabled"]])
        expect((yield* ControlAudit.history(carols.id as RunId)).last.map((a) => [a.action, a.by.id, a.reason])).toEqual([["pause", "swarm", "user carol disabled"]])
        // Paused in fact: an admin's pause is refused as paused already.
        expect(yield* Effect.flip(second.manager.pause(principals["sk_root"], carols.id))).toMatchObject({ _tag: "Conflict" })
        yield* second.manager.stop(principals["sk_root"], bobs.id)
        yield* second.manager.stop(principals["sk_root"], carols.id)
        yield* second.shutdown
      }), { timeout: 120_000 })
  })
}
