/**
 * Approvals over RPC: a run under the approval policy `pause` waits at each intent that needs a
 * human; its owner lists it, approves or rejects it with a reason, and an intent nobody answers is
 * rejected as expired after the strategy's timeout. Nobody else sees or answers another's
 * approvals ("not yours" is "does not exist"). The answers are recorded in the run's events, so a
 * replay answers them the same way without anyone. An intent still waiting when its run ends is
 * cancelled in the approvals table, and answering it then says so. On every back-end.
 */
import { expect, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { approvalClient, approvalHandlers, guarded, until } from "./fixtures.js"


const resolutions = (run: string) =>
  Effect.map(Runs.events(run as never), (rows) =>
    rows.filter((row) => row.tag === "ApprovalResolved").map((row) => JSON.parse(row.body) as { round: string; outcome: string; by: string; reason: string }))

for (const backend of backends) {
  layer(approvalHandlers(backend.store), { timeout: startTimeout, excludeTestServices: true })(`approvals (${backend.name})`, (it) => {
    it.scoped("the owner approves and rejects held intents; others neither see nor answer them; the replay answers the same", () =>
      Effect.gen(function*() {
        const alice = yield* approvalClient("sk_alice")
        const bob = yield* approvalClient("sk_bob")
        const root = yield* approvalClient("sk_root")
        yield* alice("strategies.create", { strategy: guarded("guarded", 30) })
        const run = yield* alice("runs.start", { strategy: "guarded", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })

        const [first] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "the first approval")
        expect(first).toMatchObject({ run: run.id, ref: `guarded#${run.number}`, side: "buy" })
        expect(first!.reasons.join(" ")).toMatch(/approval|notional/i)
        expect(first!.expiresAt - first!.requestedAt).toBe(30_000)
        expect(yield* alice("approvals.pending", { run: run.ref })).toHaveLength(1)
        // Not bob's: he sees nothing, his run filter is "no such run" and an answer "no such
        // approval", as for a run or an approval that does not exist.
        expect(yield* bob("approvals.pending", {})).toEqual([])
        const foreign = yield* Effect.flip(bob("approvals.pending", { run: run.id }))
        const typo = yield* Effect.flip(alice("approvals.pending", { run: `${run.id}x` }))
        expect(foreign).toMatchObject({ _tag: "RunNotFound", run: run.id })
        expect(typo).toMatchObject({ _tag: "RunNotFound", run: `${run.id}x` })
        const notYours = yield* Effect.flip(bob("approvals.approve", { run: run.id, round: first!.round }))
        const missing = yield* Effect.flip(alice("approvals.approve", { run: run.id, round: "no-such-round" }))
        expect(notYours._tag).toBe("ApprovalNotFound")
        expect(missing._tag).toBe("ApprovalNotFound")
        expect((yield* root("approvals.pending", {})).map((p) => p.round)).toEqual([first!.round])

        yield* alice("approvals.approve", { run: run.id, round: first!.round })
        // Answered once: a second answer is a conflict that says how it was resolved, never a second resolution.
        const again = yield* Effect.flip(alice("approvals.reject", { run: run.id, round: first!.round, reason: "changed my mind" }))
        expect(again).toMatchObject({ _tag: "Conflict", reason: `round ${first!.round} of run ${run.id} was approved already, by alice` })
        // Bob still learns nothing of it.
        expect((yield* Effect.flip(bob("approvals.reject", { run: run.id, round: first!.round, reason: "mine now" })))._tag).toBe("ApprovalNotFound")

        const [second] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0 && p[0]!.round !== first!.round, "a second approval")
        yield* alice("approvals.reject", { run: run.id, round: second!.round, reason: "too big for a Friday" })

        // The rest approved as they come, until the run ends.
        const done = yield* until(
          Effect.gen(function*() {
            for (const held of yield* alice("approvals.pending", {})) {
              if (held.round !== second!.round) yield* Effect.ignore(alice("approvals.approve", { run: run.id, round: held.round }))
            }
            return yield* alice("runs.get", { run: run.id })
          }),
          (r) => r.status !== "running",
          "the run to end"
        )
        expect(done.status).toBe("completed")
        // Once recorded, the store says how (what a server that did not see the answer reads).
        expect(yield* Runs.resolvedApproval(run.id as never, second!.round)).toEqual({ outcome: "rejected", by: "alice", reason: "too big for a Friday" })
        expect(yield* Runs.resolvedApproval(run.id as never, "no-such-round")).toBeUndefined()
        const late = yield* Effect.flip(alice("approvals.approve", { run: run.id, round: second!.round }))
        expect(late).toMatchObject({ _tag: "Conflict", reason: `round ${second!.round} of run ${run.id} was rejected already, by alice` })
        const resolved = yield* resolutions(run.id)
        expect(resolved[0]).toEqual({ ...resolved[0], round: first!.round, outcome: "approved", by: "alice" })
        expect(resolved[1]).toEqual({ ...resolved[1], round: second!.round, outcome: "rejected", by: "alice", reason: "too big for a Friday" })
        expect(resolved.slice(2).every((r) => r.outcome === "approved" && r.by === "alice")).toBe(true)

        // Nobody attends the replay: the recorded answers are given again, and every event matches.
        const replayed = yield* StoredRun.replay(run.id)
        expect(replayed.checksum).toBe(done.checksum)
      }), { timeout: 120_000 })

    it.scoped("an admin naming a run by a <strategy>#<n> two owners have is told so, not that nothing is pending", () =>
      Effect.gen(function*() {
        const alice = yield* approvalClient("sk_alice")
        const bob = yield* approvalClient("sk_bob")
        const root = yield* approvalClient("sk_root")
        const runs = []
        for (const owner of [alice, bob]) {
          yield* owner("strategies.create", { strategy: guarded("twin", 30) })
          runs.push(yield* owner("runs.start", { strategy: "twin", mode: "backtest", data: { _tag: "synthetic", bars: 60 } }))
        }
        const [first] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "alice's first approval")
        const ref = `twin#${runs[0]!.number}`
        expect(runs[1]!.number).toBe(runs[0]!.number)
        const ids = runs.map((r) => r.id).sort()
        for (const call of [
          root("approvals.pending", { run: ref }),
          root("approvals.approve", { run: ref, round: first!.round }),
          root("approvals.reject", { run: ref, round: first!.round, reason: "which one?" })
        ]) {
          const error = yield* Effect.flip(call)
          expect(error._tag).toBe("RunNotFound")
          expect(error._tag === "RunNotFound" && [...(error.ambiguous ?? [])].sort()).toEqual(ids)
        }
        // Each owner's own name is theirs alone: no ambiguity for them.
        expect((yield* alice("approvals.pending", { run: ref })).map((p) => p.round)).toContain(first!.round)
        // The admin's list is of both users' runs, each approval with its owner's name; each user's, of theirs.
        yield* until(bob("approvals.pending", {}), (p) => p.length > 0, "bob's first approval")
        const everyone = yield* root("approvals.pending", {})
        expect(new Set(everyone.map((p) => `${p.run} ${p.owner}`))).toEqual(new Set([`${runs[0]!.id} alice`, `${runs[1]!.id} bob`]))
        expect((yield* alice("approvals.pending", {})).map((p) => p.owner)).toEqual(["alice"])
        for (const run of runs) yield* root("runs.stop", { run: run.id })
      }), { timeout: 120_000 })

    it.scoped("an intent nobody answers expires after the strategy's timeout and is rejected", () =>
      Effect.gen(function*() {
        const alice = yield* approvalClient("sk_alice")
        yield* alice("strategies.create", { strategy: guarded("slow to answer", 0.3) })
        const run = yield* alice("runs.start", { strategy: "slow to answer", mode: "paper", data: { _tag: "synthetic", bars: 60 }, speed: 86_400_000 })
        const [held] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "an approval")
        // It stays pending while the run waits, and then it is gone, rejected as expired.
        yield* until(alice("approvals.pending", {}), (p) => !p.some((x) => x.round === held!.round), "the approval to expire")
        const resolved = yield* until(resolutions(run.id), (r) => r.some((x) => x.round === held!.round), "the expiry to be recorded")
        expect(resolved.find((x) => x.round === held!.round)).toMatchObject({ outcome: "expired", by: "expiry" })
        expect(resolved.find((x) => x.round === held!.round)!.reason).toMatch(/0\.3 s/)
        // Too late to answer it now, and told why.
        const late = yield* Effect.flip(alice("approvals.approve", { run: run.id, round: held!.round }))
        expect(late._tag).toBe("Conflict")
        expect(late.message).toMatch(/expired already \(nobody decided within 0\.3 s/)
        yield* alice("runs.stop", { run: run.id })
      }), { timeout: 120_000 })

    it.scoped("a paused run's held intent does not expire while it is paused: its countdown stands still, its expiry moves on; resumed, it expires", () =>
      Effect.gen(function*() {
        const alice = yield* approvalClient("sk_alice")
        yield* alice("strategies.create", { strategy: guarded("paused to think", 1) })
        const run = yield* alice("runs.start", { strategy: "paused to think", mode: "paper", data: { _tag: "synthetic", bars: 60 }, speed: 86_400_000 })
        const [held] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "an approval")
        yield* alice("runs.pause", { run: run.id })
        const pausedAt = Date.now()
        // Three times its timeout paused: still waiting, its expiry pushed back by the pause.
        yield* Effect.sleep("3 seconds")
        const still = (yield* alice("approvals.pending", {})).find((p) => p.round === held!.round)
        expect(still).toBeDefined()
        expect(still!.expiresAt - held!.expiresAt).toBeGreaterThan(2_500)
        expect(still!.expiresAt).toBeGreaterThan(Date.now())
        expect((yield* resolutions(run.id)).some((r) => r.round === held!.round)).toBe(false)
        // Resumed, it expires after what was left of its second.
        yield* alice("runs.resume", { run: run.id })
        const resolved = yield* until(resolutions(run.id), (r) => r.some((x) => x.round === held!.round), "the expiry to be recorded")
        expect(Date.now() - pausedAt).toBeGreaterThan(3_000)
        expect(resolved.find((x) => x.round === held!.round)).toMatchObject({ outcome: "expired", by: "expiry" })
        yield* alice("runs.stop", { run: run.id })
      }), { timeout: 120_000 })

    it.scoped("an expiry the run failed to record: answering it says the table's word (cancelled by the failure), not the server's memory", () =>
      Effect.gen(function*() {
        const alice = yield* approvalClient("sk_alice")
        const sql = yield* SqlClient.SqlClient
        // The database refuses the expiry's event: the run fails with the intent unanswered on record.
        yield* sql`create or replace function refuse_resolutions() returns trigger language plpgsql as $$
          begin
            if new.tag = 'ApprovalResolved' then raise exception 'refused by the test'; end if;
            return new;
          end $$`
        yield* sql`create trigger refuse_resolutions before insert on run_events for each row execute function refuse_resolutions()`
        yield* Effect.addFinalizer(() => Effect.ignore(sql`drop trigger refuse_resolutions on run_events`))
        yield* alice("strategies.create", { strategy: guarded("expiry unrecorded", 0.3) })
        const run = yield* alice("runs.start", { strategy: "expiry unrecorded", mode: "paper", data: { _tag: "synthetic", bars: 60 }, speed: 86_400_000 })
        const [held] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "an approval")
        const failed = yield* until(alice("runs.get", { run: run.id }), (r) => r.status !== "running", "the run to fail")
        expect(failed.status).toBe("failed")
        expect(yield* Runs.resolvedApproval(run.id as never, held!.round)).toEqual({
          outcome: "cancelled",
          by: "failure",
          reason: "the run failed before anyone answered it"
        })
        // Before, the server's memory of the expiry won: "expired already", which no record shows.
        const late = yield* Effect.flip(alice("approvals.approve", { run: run.id, round: held!.round }))
        expect(late._tag === "Conflict" && late.reason).toBe(`round ${held!.round} of run ${run.id} was cancelled: the run failed before anyone answered it`)
      }), { timeout: 120_000 })

    it.scoped("an intent recorded as waiting that waits nowhere here (a stop's cancellation not yet written) is a Conflict, not 'not found'", () =>
      Effect.gen(function*() {
        const alice = yield* approvalClient("sk_alice")
        yield* alice("strategies.create", { strategy: guarded("waits nowhere", 600) })
        const run = yield* alice("runs.start", { strategy: "waits nowhere", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
        const [held] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "an approval")
        yield* alice("runs.stop", { run: run.id })
        // The moment between a stop ending the run and its cancellation reaching the table (an
        // approve racing the stop answered ApprovalNotFound there), set up to last.
        const sql = yield* SqlClient.SqlClient
        yield* sql`update approvals set status = 'pending', resolved_by = null, reason = null where run_id = ${run.id} and round_id = ${held!.round}`
        const answer = yield* Effect.flip(alice("approvals.approve", { run: run.id, round: held!.round }))
        expect(answer._tag === "Conflict" && answer.reason).toBe(
          `round ${held!.round} of run ${run.id} waits in no live process here: its run ended, or runs in another process`
        )
        // A round never held is still not found; so is the intent, for anyone else.
        expect((yield* Effect.flip(alice("approvals.approve", { run: run.id, round: "S0@1" })))._tag).toBe("ApprovalNotFound")
        const bob = yield* approvalClient("sk_bob")
        expect((yield* Effect.flip(bob("approvals.approve", { run: run.id, round: held!.round })))._tag).toBe("ApprovalNotFound")
      }), { timeout: 120_000 })

    it.scoped("an intent still waiting when its run is stopped is cancelled in the table, saying so; a resume asks it again", () =>
      Effect.gen(function*() {
        const alice = yield* approvalClient("sk_alice")
        yield* alice("strategies.create", { strategy: guarded("stopped while held", 600) })
        const run = yield* alice("runs.start", { strategy: "stopped while held", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
        const [held] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "an approval")
        expect(yield* Runs.resolvedApproval(run.id as never, held!.round)).toBeUndefined()

        expect((yield* alice("runs.stop", { run: run.id })).status).toBe("stopped")
        expect(yield* alice("approvals.pending", {})).toEqual([])
        // Not pending for ever: cancelled, by the stop, saying why.
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ status: string; resolvedBy: string; reason: string }>`
          select status, resolved_by, reason from approvals where run_id = ${run.id} and round_id = ${held!.round}`
        expect(rows).toEqual([{ status: "cancelled", resolvedBy: "stop", reason: "the run was stopped before anyone answered it" }])
        expect(yield* Runs.resolvedApproval(run.id as never, held!.round)).toEqual({
          outcome: "cancelled",
          by: "stop",
          reason: "the run was stopped before anyone answered it"
        })
        // Answering it now is a conflict that says what became of it (not "no such approval").
        const cancelled = `round ${held!.round} of run ${run.id} was cancelled: the run was stopped before anyone answered it`
        expect(yield* Effect.flip(alice("approvals.approve", { run: run.id, round: held!.round }))).toMatchObject({ _tag: "Conflict", reason: cancelled })
        expect(yield* Effect.flip(alice("approvals.reject", { run: run.id, round: held!.round, reason: "no" }))).toMatchObject({ _tag: "Conflict", reason: cancelled })
        // Its replay reproduces it up to where it was stopped, the intent unanswered there, asking nobody.
        const [recorded] = yield* sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${run.id}`
        const replayed = yield* StoredRun.replay(run.id)
        expect({ events: replayed.events, status: replayed.status }).toEqual({ events: recorded!.n, status: "stopped" })
        // A cancellation is no answer: resumed by name, the run asks the intent again, and this time it is approved.
        const asked: Array<string> = []
        const resumed = yield* StoredRun.resume(run.id, {
          approver: (request) => Effect.sync(() => (asked.push(request.round), { approved: true, by: "carol", reason: "fine now" }))
        })
        expect(resumed.result.status).toBe("completed")
        expect(asked[0]).toBe(held!.round)
        expect(yield* Runs.resolvedApproval(run.id as never, held!.round)).toEqual({ outcome: "approved", by: "carol", reason: "fine now" })
        expect((yield* resolutions(run.id)).find((r) => r.round === held!.round)).toMatchObject({ outcome: "approved", by: "carol" })
        // Cancelled, asked again and answered: the approvals row is what the events say.
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true })
      }), { timeout: 120_000 })

    it.effect("a strategy's approval timeout is checked: the field and the reason", () =>
      Effect.gen(function*() {
        const body = { ...Schema.encodeSync(Strategy)(guarded("bad timeout", 1)), risk: { approval: { policy: "pause", timeoutSeconds: -1 } } }
        const error = yield* Effect.flip(Schema.decodeUnknown(Strategy)(body))
        expect(error.message).toMatch(/timeoutSeconds must be between 0\.1 and 604800/)
        for (const field of ['["risk"]', '["approval"]', '["timeoutSeconds"]']) expect(error.message).toContain(field)
      }))
  })
}
