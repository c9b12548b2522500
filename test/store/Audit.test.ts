/**
 * The audit chains prove their rows untouched: a recorded run's event log (each event hashed with
 * the one before, its length and head recorded when the run ended, its events re-hashing to the
 * run's checksum) and the `audit_log` streams of strategy versions. Every kind of tampering — a
 * changed row, a deleted one (in the middle or at the end), a reordering, an addition, a tamper
 * whose chain was recomputed — is reported at the right position with a reason naming it.
 *
 * Each tamper runs in a transaction that is rolled back after the verification, so one recording
 * serves several tampers, and the untouched recording verifies again afterwards. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Context, Data, Effect, Fiber, Schema } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import { Principal } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import * as Audit from "../../src/store/Audit.js"
import * as ControlAudit from "../../src/store/ControlAudit.js"
import { GENESIS, linkHash } from "../../src/store/RunRecorder.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Users from "../../src/store/Users.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { rewindTotals } from "./fixtures/checks.js"
import { migrate } from "../../src/store/Migrations.js"
import { stored, strategy } from "./fixtures/workload.js"

class Undo extends Data.TaggedError("Undo")<{ readonly report: Audit.AuditReport }> {}

/** Apply `tamper`, verify with `verify`, roll the tamper back; the report of the tampered state. */
const whileTampered = <E, R>(
  tamper: Effect.Effect<unknown, E, R>,
  verify: Effect.Effect<Audit.AuditReport, unknown, SqlClient.SqlClient>
): Effect.Effect<Audit.AuditReport, never, R | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const outcome = yield* Effect.flip(sql.withTransaction(Effect.gen(function*() {
      yield* tamper
      return yield* new Undo({ report: yield* verify })
    })))
    return outcome instanceof Undo ? outcome.report : yield* Effect.die(outcome)
  })

/** Entries 1 and 2 of an `audit_log` stream trade places, each whole (entry, its hash and its link). */
const swapFirstTwo = (stream: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`update audit_log set position = 1000000 where stream = ${stream} and position = 1`,
      sql`update audit_log set position = 1 where stream = ${stream} and position = 2`,
      sql`update audit_log set position = 2 where stream = ${stream} and position = 1000000`
    ]))

interface Recorded {
  readonly run: string
  readonly events: number
  /** A middle event (an `OrderFilled`), and another one after it. */
  readonly middle: number
  readonly later: number
}

const record = (name: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { result, run } = yield* StoredRun.backtest(stored(3, 150, { name }))
    const events = result.counts.events
    const fills = yield* sql<{ seq: number }>`select seq from run_events where run_id = ${run} and tag = 'OrderFilled' order by seq`
    expect(fills.length).toBeGreaterThan(10)
    const middle = fills[Math.floor(fills.length / 2)]!.seq
    const later = fills[Math.floor(fills.length / 2) + 3]!.seq
    expect((yield* Audit.verifyRun(run)).ok).toBe(true)
    return { run, events, middle, later } satisfies Recorded
  })

/**
 * What a crash after event `seq` leaves (the recorder writes an event and its tables' rows in one
 * transaction): none of the events after it, nor their rows.
 */
const lostAfter = (run: string, seq: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`delete from run_events where run_id = ${run} and seq > ${seq}`,
      ...["opinions", "decisions", "verdicts", "orders", "fills", "trades", "equity_snapshots", "positions", "reasoning"].map((table) =>
        sql`delete from ${sql(table)} where run_id = ${run} and seq > ${seq}`
      ),
      sql`delete from approvals where run_id = ${run} and requested_seq > ${seq}`,
      sql`update approvals set status = 'pending', resolved_seq = null, resolved_by = null, reason = null where run_id = ${run} and resolved_seq > ${seq}`,
      sql`delete from rounds r where run_id = ${run}
        and not exists (select 1 from opinions o where o.run_id = r.run_id and o.round_id = r.round_id)
        and not exists (select 1 from decisions d where d.run_id = r.run_id and d.round_id = r.round_id)`,
      rewindTotals(run, seq)
    ], { discard: true }))

const failed = (report: Audit.AuditReport) => {
  if (report.ok) throw new Error(`expected the chain not to verify, got ${JSON.stringify(report)}`)
  return report
}

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`audit chains (${backend.name})`, (it) => {
    it.effect("an untouched run verifies: every event, up to the head and checksum it recorded", () =>
      Effect.gen(function*() {
        const { events, run } = yield* record("untouched")
        const sql = yield* SqlClient.SqlClient
        const [last] = yield* sql<{ hash: string }>`select hash from run_events where run_id = ${run} order by seq desc limit 1`
        const recorded = yield* Runs.get(run)
        expect(recorded.chain).toEqual({ count: events, hash: last!.hash })
        expect(yield* Audit.verifyRun(run)).toEqual({ ok: true, stream: `run:${run}`, entries: events, head: last!.hash, control: 0 })
        expect(yield* Audit.verifyRun("untouched#1", "local")).toEqual(yield* Audit.verifyRun(run))
      }))

    it.effect("the agents' totals (restarts, model calls) are held to the events; a run recorded before the tables has them from its events after the migration", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { run } = yield* StoredRun.backtest(stored(3, 150, { name: "totals", faults: { sma_crossover: { every: 60 } } }))
        const rows = () => sql<{ agent: string; crashes: string | number; restarts: string | number; lastSeq: string | number; lastCause: string }>`
          select agent, crashes, restarts, last_seq, last_cause from agent_restarts where run_id = ${run} order by agent`
        const recorded = (yield* rows()).map((r) => ({ ...r, crashes: Number(r.crashes), restarts: Number(r.restarts), lastSeq: Number(r.lastSeq) }))
        const [lastCrash] = yield* sql<{ seq: string | number }>`select seq from run_events where run_id = ${run} and tag = 'AgentLifecycle'
          and body like '%"_tag":"ActorCrashed"%' order by seq desc limit 1`
        expect(recorded).toEqual([{
          agent: "/user/run/analysts/sma_crossover",
          crashes: 2,
          restarts: 2,
          lastSeq: Number(lastCrash!.seq),
          lastCause: "Error: injected fault: sma_crossover crashed on message 120"
        }])
        expect((yield* Audit.verifyRun(run)).ok).toBe(true)

        // Changed, deleted, added: reported at the agent's last crash or restart, or after the last event.
        const [lastRestart] = yield* sql<{ seq: string | number }>`select seq from run_events where run_id = ${run} and tag = 'AgentLifecycle'
          and body like '%"_tag":"ActorRestarted"%' order by seq desc limit 1`
        const at = Number(lastRestart!.seq)
        expect(at).toBeGreaterThan(Number(lastCrash!.seq))
        const changed = failed(yield* whileTampered(sql`update agent_restarts set last_cause = 'nothing' where run_id = ${run}`, Audit.verifyRun(run)))
        expect(changed.position).toBe(at)
        expect(changed.reason).toMatch(/^the agent_restarts row of .* is not what the run's events add up to: agent_restarts.last_cause is "nothing", the event says "Error: injected fault/)
        const deleted = failed(yield* whileTampered(sql`delete from agent_restarts where run_id = ${run}`, Audit.verifyRun(run)))
        expect(deleted.reason).toMatch(/: it was deleted$/)
        const added = failed(yield* whileTampered(sql`insert into agent_restarts values (${run}, '/user/run/risk', 1, 1, 1, 'boom')`, Audit.verifyRun(run)))
        expect(added.reason).toMatch(/^agent_restarts has a row of .*risk.*, which no event gives: it was added$/)

        // A database from before the tables (at migration 11, the later ones undone: migrations run
        // past the latest applied): the migration adds each run's totals up from its events.
        yield* sql`drop table agent_restarts`
        yield* sql`drop table llm_usage`
        yield* sql`alter table control_requests drop constraint control_requests_trading_state`
        yield* sql`alter table control_requests drop column state`
        yield* sql`alter table control_requests drop column result`
        yield* sql`alter table control_requests drop constraint control_requests_action_check`
        yield* sql`alter table control_requests add constraint control_requests_action_check
          check (action in ('stop', 'pause', 'resume', 'approve', 'reject'))`
        yield* sql`delete from swarm_migrations where migration_id >= 12`
        expect(yield* migrate).toEqual([[12, "agent_totals"], [13, "control_trading"], [14, "partial_fills"], [15, "up_to_stop"], [16, "waiting_runs"]])
        expect((yield* rows()).map((r) => ({ ...r, crashes: Number(r.crashes), restarts: Number(r.restarts), lastSeq: Number(r.lastSeq) }))).toEqual(recorded)
        expect((yield* Audit.verifyRun(run)).ok).toBe(true)
      }))

    it.effect("a strategy whose agents' params list their keys in another order than the database keeps them verifies and replays", () =>
      Effect.gen(function*() {
        // `jsonb` keeps keys in its own order: the snapshot reads an agent's `{slow, fast}` back as
        // `{fast, slow}`; the chain's text copy keeps the order given (the shipped LLM example's did).
        const base = strategy(2, "keys in their own order")
        const unordered = Schema.decodeUnknownSync(Strategy)({
          ...Schema.encodeSync(Strategy)(base),
          agents: [{ type: "sma_crossover", params: { slow: 20, fast: 5 } }, { type: "ema_crossover", params: { slow: 20, fast: 5 } }]
        })
        const { run } = yield* StoredRun.backtest({ ...stored(2, 60), strategy: unordered })
        const report = yield* Audit.verifyRun(run)
        expect(report.ok).toBe(true)
        const replayed = yield* StoredRun.replay(run)
        expect(replayed.status).toBe("completed")
      }))

    it.effect("a changed event is reported at its position, as changed", () =>
      Effect.gen(function*() {
        const { events, middle, run } = yield* record("changed")
        const sql = yield* SqlClient.SqlClient
        const verify = Audit.verifyRun(run)
        // A fill's quantity, in the event's text (the JSON stays valid).
        const changedBody = failed(yield* whileTampered(
          sql`update run_events set body = replace(body, '"quantity":', '"quantity":1') where run_id = ${run} and seq = ${middle}`,
          verify
        ))
        expect(changedBody).toMatchObject({ stream: `run:${run}`, position: middle })
        expect(changedBody.reason).toContain(`entry ${middle} (OrderFilled) does not verify: its content was changed`)
        // One byte of whitespace is a change too.
        const spaced = failed(yield* whileTampered(
          sql`update run_events set body = body || ' ' where run_id = ${run} and seq = ${middle}`,
          verify
        ))
        expect(spaced.position).toBe(middle)
        // The first and the last event.
        expect(failed(yield* whileTampered(
          sql`update run_events set body = replace(body, '"seed":"0"', '"seed":"1"') where run_id = ${run} and seq = 1`,
          verify
        )).position).toBe(1)
        expect(failed(yield* whileTampered(
          sql`update run_events set body = body || ' ' where run_id = ${run} and seq = ${events}`,
          verify
        )).position).toBe(events)
        // A hash edited instead of the content.
        expect(failed(yield* whileTampered(
          sql`update run_events set hash = ${"f".repeat(64)} where run_id = ${run} and seq = ${middle}`,
          verify
        )).position).toBe(middle)
        expect((yield* verify).ok).toBe(true)
      }))

    it.effect("a deleted event is reported: in the middle as missing, at the end against the recorded length", () =>
      Effect.gen(function*() {
        const { events, middle, run } = yield* record("deleted")
        const sql = yield* SqlClient.SqlClient
        const verify = Audit.verifyRun(run)
        const inTheMiddle = failed(yield* whileTampered(sql`delete from run_events where run_id = ${run} and seq = ${middle}`, verify))
        expect(inTheMiddle.position).toBe(middle)
        expect(inTheMiddle.reason).toBe(`entry ${middle} is missing: the chain goes from ${middle - 1} to ${middle + 1} (deleted)`)

        const first = failed(yield* whileTampered(sql`delete from run_events where run_id = ${run} and seq = 1`, verify))
        expect(first.position).toBe(1)
        expect(first.reason).toContain("entry 1 is missing")

        const last = failed(yield* whileTampered(sql`delete from run_events where run_id = ${run} and seq = ${events}`, verify))
        expect(last.position).toBe(events)
        expect(last.reason).toBe(`the chain ends at entry ${events - 1} but ${events} were recorded (deleted at the end)`)

        const lastThree = failed(yield* whileTampered(sql`delete from run_events where run_id = ${run} and seq > ${events - 3}`, verify))
        expect(lastThree.position).toBe(events - 2)
        expect(lastThree.reason).toContain("deleted at the end")

        const everything = failed(yield* whileTampered(sql`delete from run_events where run_id = ${run}`, verify))
        expect(everything.position).toBe(1)
        expect(everything.reason).toContain(`the chain ends at entry 0 but ${events} were recorded`)
        expect((yield* verify).ok).toBe(true)
      }))

    it.effect("reordered events are reported at the first one out of place", () =>
      Effect.gen(function*() {
        const { later, middle, run } = yield* record("reordered")
        const sql = yield* SqlClient.SqlClient
        const verify = Audit.verifyRun(run)
        // The rows trade places, each with its own hash (sequence numbers swapped through a free one).
        const swapRows = Effect.all([
          sql`update run_events set seq = 1000000000 where run_id = ${run} and seq = ${middle}`,
          sql`update run_events set seq = ${middle} where run_id = ${run} and seq = ${later}`,
          sql`update run_events set seq = ${later} where run_id = ${run} and seq = 1000000000`
        ])
        const rows = failed(yield* whileTampered(swapRows, verify))
        expect(rows.position).toBe(middle)
        expect(rows.reason).toContain(`entry ${middle} (OrderFilled) does not verify`)
        expect(rows.reason).toContain("reordered")
        // Only the contents trade places (the hashes stay).
        const swapBodies = sql`update run_events e set body = o.body, tag = o.tag from run_events o
          where e.run_id = ${run} and o.run_id = ${run} and ((e.seq = ${middle} and o.seq = ${later}) or (e.seq = ${later} and o.seq = ${middle}))`
        const bodies = failed(yield* whileTampered(swapBodies, verify))
        expect(bodies.position).toBe(middle)
        expect(bodies.reason).toContain("reordered")
        // Two adjacent events.
        const adjacent = failed(yield* whileTampered(
          Effect.all([
            sql`update run_events set seq = 1000000000 where run_id = ${run} and seq = ${middle}`,
            sql`update run_events set seq = ${middle} where run_id = ${run} and seq = ${middle + 1}`,
            sql`update run_events set seq = ${middle + 1} where run_id = ${run} and seq = 1000000000`
          ]),
          verify
        ))
        expect(adjacent.position).toBe(middle)
        expect((yield* verify).ok).toBe(true)
      }))

    it.effect("an event added after the end is reported, even one correctly linked", () =>
      Effect.gen(function*() {
        const { events, run } = yield* record("appended")
        const sql = yield* SqlClient.SqlClient
        const [last] = yield* sql<{ hash: string; body: string; at: string }>`select hash, body, at from run_events where run_id = ${run} and seq = ${events}`
        const body = last!.body.replace(`"seq":${events}`, `"seq":${events + 1}`)
        const added = failed(yield* whileTampered(
          sql`insert into run_events (run_id, seq, tag, at, hash, body)
            values (${run}, ${events + 1}, 'RunCompleted', ${last!.at}, ${linkHash(last!.hash, body)}, ${body})`,
          Audit.verifyRun(run)
        ))
        expect(added.position).toBe(events + 1)
        expect(added.reason).toBe(`the chain goes on past the ${events} entries recorded (added)`)
      }))

    it.effect("a changed event whose chain was recomputed is caught by the recorded head, then by the checksum", () =>
      Effect.gen(function*() {
        const { events, middle, run } = yield* record("rehashed")
        const sql = yield* SqlClient.SqlClient
        // Rewrite the event and every hash from it on, as someone covering their tracks would.
        const rehash = Effect.gen(function*() {
          yield* sql`update run_events set body = replace(body, '"quantity":', '"quantity":1') where run_id = ${run} and seq = ${middle}`
          const rows = yield* sql<{ seq: number; body: string }>`select seq, body from run_events where run_id = ${run} order by seq`
          let prev = GENESIS
          for (const row of rows) {
            prev = linkHash(prev, row.body)
            if (row.seq >= middle) yield* sql`update run_events set hash = ${prev} where run_id = ${run} and seq = ${row.seq}`
          }
          return prev
        })
        const head = failed(yield* whileTampered(rehash, Audit.verifyRun(run)))
        expect(head.position).toBe(events)
        expect(head.reason).toBe("the chain's last hash is not the head that was recorded")
        // The head rewritten as well: the fill's row is not what the rewritten event says.
        const rewritten = Effect.flatMap(rehash, (hash) => sql`update runs set chain_head = ${hash} where id = ${run}`)
        const row = failed(yield* whileTampered(rewritten, Audit.verifyRun(run)))
        expect(row.position).toBe(middle)
        expect(row.reason).toMatch(new RegExp(`^the fills row of event ${middle} is not what the event says: fills\\.quantity is \\d+, the event says 1\\d+$`))
        // That row rewritten too: the events no longer give the run's checksum.
        const checksum = failed(yield* whileTampered(
          Effect.zipRight(rewritten, sql`update fills set quantity = ('1' || quantity::text)::double precision where run_id = ${run} and seq = ${middle}`),
          Audit.verifyRun(run)
        ))
        expect(checksum.position).toBe(1)
        expect(checksum.reason).toContain("do not re-hash to the run's checksum")
        expect((yield* Audit.verifyRun(run)).ok).toBe(true)
      }))

    it.effect("the tables the events feed (what runs show, compare and the chat read) are held to the events: a changed, deleted or added row is reported", () =>
      Effect.gen(function*() {
        const { middle, run } = yield* record("projections")
        const sql = yield* SqlClient.SqlClient
        const [decision] = yield* sql<{ seq: number; action: string }>`select seq, action from decisions where run_id = ${run} order by seq limit 1`
        const [equity] = yield* sql<{ seq: number }>`select seq from equity_snapshots where run_id = ${run} order by seq desc limit 1`
        const [order] = yield* sql<{ seq: number; orderId: string }>`select seq, order_id from orders where run_id = ${run} order by seq limit 1`
        const [round] = yield* sql<{ roundId: string }>`select round_id from rounds where run_id = ${run} order by round_id limit 1`
        const other = decision!.action === "long" ? "short" : "long"
        const cases: Array<[string, Effect.Effect<unknown, unknown, SqlClient.SqlClient>, number, string | RegExp]> = [
          // What the probe did: runs compare then showed a first differing decision, runs show an equity ten times over.
          ["decision", sql`update decisions set action = ${other} where run_id = ${run} and seq = ${decision!.seq}`, decision!.seq,
            `the decisions row of event ${decision!.seq} is not what the event says: decisions.action is "${other}", the event says "${decision!.action}"`],
          ["equity", sql`update equity_snapshots set equity = equity * 10 where run_id = ${run} and seq = ${equity!.seq}`, equity!.seq,
            new RegExp(`^the equity_snapshots row of event ${equity!.seq} is not what the event says: equity_snapshots\\.equity is \\d+, the event says \\d+$`)],
          ["order", sql`update orders set quantity = quantity * 100 where run_id = ${run} and seq = ${order!.seq}`, order!.seq,
            new RegExp(`^the orders row of event ${order!.seq} is not what the event says: orders\\.quantity is `)],
          ["deleted fill", sql`delete from fills where run_id = ${run} and seq = ${middle}`, middle, `fills lacks the row of event ${middle}: it was deleted or changed`],
          ["added trade", sql`insert into trades (run_id, seq, symbol, side, entry_ts, exit_ts, pnl) values (${run}, ${middle}, 'S000', 'long', 0, 1, 5000000)`, middle,
            `trades has a row for event ${middle} that no event gives: it was added or changed`],
          ["round", sql`update rounds set ts = ts + 1 where run_id = ${run} and round_id = ${round!.roundId}`, -1,
            new RegExp(`^the rounds row of round ${round!.roundId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is not what its events say: rounds\\.ts is \\d+, the event says \\d+$`)]
        ]
        // A run's rows are read a page at a time beside its events: with pages of 10 too, each
        // table's rows cross many pages, and a tamper is found in whichever page it is.
        const { events } = yield* Runs.get(run).pipe(Effect.map((r) => ({ events: r.recordedEvents! })))
        expect(events).toBeGreaterThan(100)
        const last = yield* sql<{ seq: number }>`select seq from opinions where run_id = ${run} order by seq desc limit 1`
        cases.push(
          ["last opinion", sql`update opinions set confidence = confidence / 2 where run_id = ${run} and seq = ${last[0]!.seq}`, last[0]!.seq,
            new RegExp(`^the opinions row of event ${last[0]!.seq} is not what the event says: opinions\\.confidence is `)],
          ["opinion past the end", sql`insert into opinions (run_id, round_id, agent, seq, direction, confidence) values (${run}, 'x', 'y', ${events + 7}, 'long', 0.5)`,
            events + 7, `opinions has a row for event ${events + 7}, past the run's last event: it was added`]
        )
        for (const pageSize of [undefined, 10]) {
          for (const [what, tamper, position, reason] of cases) {
            const report = failed(yield* whileTampered(tamper, Audit.verifyRun(run, undefined, pageSize === undefined ? undefined : { pageSize })))
            if (position >= 0) expect([what, pageSize, report.position]).toEqual([what, pageSize, position])
            if (typeof reason === "string") expect([what, pageSize, report.reason]).toEqual([what, pageSize, reason])
            else expect([what, pageSize, report.reason]).toEqual([what, pageSize, expect.stringMatching(reason)])
          }
          // Untouched again, it verifies.
          expect((yield* Audit.verifyRun(run, undefined, pageSize === undefined ? undefined : { pageSize })).ok).toBe(true)
        }
      }))

    it.effect("the events come first: a broken chain is what is reported, though a row an earlier event feeds was changed too; in pages of any size", () =>
      Effect.gen(function*() {
        const { later, run } = yield* record("chain first")
        const sql = yield* SqlClient.SqlClient
        const [decision] = yield* sql<{ seq: number }>`select seq from decisions where run_id = ${run} and seq < ${later} order by seq limit 1`
        const both = Effect.all([
          sql`update decisions set confidence = confidence / 2 where run_id = ${run} and seq = ${decision!.seq}`,
          sql`update run_events set body = body || ' ' where run_id = ${run} and seq = ${later}`
        ])
        for (const pageSize of [undefined, 10]) {
          const report = failed(yield* whileTampered(both, Audit.verifyRun(run, undefined, pageSize === undefined ? undefined : { pageSize })))
          expect([pageSize, report.position, report.reason]).toEqual([pageSize, later, expect.stringContaining(`entry ${later} (OrderFilled) does not verify`)])
        }
        // The row alone: reported at its event.
        const row = failed(yield* whileTampered(both.pipe(Effect.zipLeft(sql`update run_events set body = rtrim(body) where run_id = ${run} and seq = ${later}`)), Audit.verifyRun(run, undefined, { pageSize: 10 })))
        expect(row.position).toBe(decision!.seq)
      }))

    it.effect("an event row's tag or time changed outside its text is reported (SSE and reports read them)", () =>
      Effect.gen(function*() {
        const { middle, run } = yield* record("columns")
        const sql = yield* SqlClient.SqlClient
        const verify = Audit.verifyRun(run)
        const tag = failed(yield* whileTampered(sql`update run_events set tag = 'OpinionGiven' where run_id = ${run} and seq = ${middle}`, verify))
        expect(tag).toMatchObject({ position: middle, reason: `entry ${middle}'s columns (tag OpinionGiven, at ${tag.reason.match(/at (\d+)/)![1]}) are not what its event says: they were changed` })
        const at = failed(yield* whileTampered(sql`update run_events set at = at + 1 where run_id = ${run} and seq = ${middle}`, verify))
        expect(at.position).toBe(middle)
        expect(at.reason).toContain("are not what its event says")
        expect((yield* verify).ok).toBe(true)
      }))

    it.effect("what the runs row says of the run — metrics, checksum, counts, status — must be what its events say", () =>
      Effect.gen(function*() {
        const { events, run } = yield* record("row")
        const sql = yield* SqlClient.SqlClient
        const verify = Audit.verifyRun(run)
        const metrics = failed(yield* whileTampered(
          sql`update runs set metrics = jsonb_set(metrics, '{totalReturn}', '3.5') where id = ${run}`,
          verify
        ))
        expect(metrics).toMatchObject({ position: events, reason: "the run's metrics are not the ones its RunCompleted event records: they were changed" })
        const checksum = failed(yield* whileTampered(sql`update runs set checksum = ${"a".repeat(64)} where id = ${run}`, verify))
        expect(checksum.position).toBe(events)
        expect(checksum.reason).toMatch(/^the run's checksum aaaaaaaaaaaa… is not the one its RunCompleted event records/)
        const orders = failed(yield* whileTampered(sql`update runs set counts = jsonb_set(counts, '{orders}', '1') where id = ${run}`, verify))
        expect(orders.reason).toMatch(/^the run's count of orders \(1\) is not what its events hold \(\d+\): it was changed$/)
        // A run that failed, marked completed: it has no RunCompleted event.
        const completed = failed(yield* whileTampered(
          Effect.zipRight(
            sql`delete from run_events where run_id = ${run} and seq = ${events}`,
            sql`update runs set chain_count = ${events - 1}, chain_head = (select hash from run_events where run_id = ${run} and seq = ${events - 1}) where id = ${run}`
          ),
          verify
        ))
        expect(completed).toMatchObject({ position: events - 1, reason: "the run is marked completed but its events do not end with RunCompleted" })
        expect((yield* verify).ok).toBe(true)
      }))

    it.effect("a run that ended before its end (stopped, failed) records its chain's end: rows deleted from it later are reported", () =>
      Effect.gen(function*() {
        const { middle, run } = yield* record("stopped")
        const sql = yield* SqlClient.SqlClient
        // A run interrupted after `middle` events, then marked stopped as StoredRun does.
        const stopped = Effect.all([
          sql`update runs set status = 'running', checksum = null, chain_count = null, chain_head = null where id = ${run}`,
          lostAfter(run, middle),
          Runs.markEnded(run as never, "stopped", "interrupted")
        ])
        expect(yield* whileTampered(stopped, Audit.verifyRun(run))).toMatchObject({ ok: true, entries: middle })
        const tail = failed(yield* whileTampered(
          Effect.zipRight(stopped, lostAfter(run, middle - 3)),
          Audit.verifyRun(run)
        ))
        expect(tail).toMatchObject({ position: middle - 2, reason: `the chain ends at entry ${middle - 3} but ${middle} were recorded (deleted at the end)` })
      }))

    it.effect("an unfinished run is verified as far as it goes", () =>
      Effect.gen(function*() {
        const { events, middle, run } = yield* record("unfinished")
        const sql = yield* SqlClient.SqlClient
        // What a crash leaves: no head recorded, the last events not written.
        const crash = Effect.all([
          sql`update runs set status = 'running', checksum = null, chain_count = null, chain_head = null where id = ${run}`,
          lostAfter(run, middle)
        ])
        const prefix = yield* whileTampered(crash, Audit.verifyRun(run))
        expect(prefix).toMatchObject({ ok: true, entries: middle })
        const changed = failed(yield* whileTampered(
          Effect.zipRight(crash, sql`update run_events set body = body || ' ' where run_id = ${run} and seq = 2`),
          Audit.verifyRun(run)
        ))
        expect(changed.position).toBe(2)
        expect(events).toBeGreaterThan(middle)
      }))

    it.effect("a live run verifies up to its events when the verification began: what its recorder commits meanwhile is not taken for added rows", () =>
      Effect.gen(function*() {
        const { events, run } = yield* record("live")
        const sql = yield* SqlClient.SqlClient
        const next = events + 1
        yield* sql`update runs set status = 'running', checksum = null, chain_count = null, chain_head = null where id = ${run}`
        // The recorder's next commit: an event and its opinion, on a connection of its own (outside
        // the verification's transaction). On the embedded PGlite (one connection) it cannot commit
        // while the verification holds the connection: the hook waits a while for it, then goes on.
        const commit = Effect.all([
          sql`insert into run_events (run_id, seq, tag, at, hash, body)
            select run_id, ${next}, tag, at, hash, body from run_events where run_id = ${run} and seq = ${events}`,
          sql`insert into opinions (run_id, round_id, agent, seq, direction, confidence)
            select run_id, round_id || '+', agent, ${next}, direction, confidence from opinions where run_id = ${run} order by seq desc limit 1`
        ], { discard: true }).pipe(
          (effect) => sql.withTransaction(effect),
          Effect.mapInputContext((context: Context.Context<never>) => Context.omit(SqlClient.TransactionConnection)(context))
        )
        let committing: Fiber.RuntimeFiber<void, unknown> | undefined
        const afterEventPages = Effect.gen(function*() {
          committing = yield* Effect.fork(commit)
          yield* Effect.ignore(Effect.timeout(Fiber.join(committing), "2 seconds"))
        })
        const report = yield* Audit.verifyRun(run, undefined, { afterEventPages })
        yield* Fiber.join(committing!)
        expect(report).toMatchObject({ ok: true, entries: events, unfinished: "running" })
        // The commit happened: the next verification sees it (here, the copied event does not chain).
        const [added] = yield* sql<{ n: number | string }>`select count(*) as n from opinions where run_id = ${run} and seq = ${next}`
        expect(Number(added!.n)).toBe(1)
        expect((yield* Audit.verifyRun(run)).ok).toBe(false)
        yield* sql`delete from opinions where run_id = ${run} and seq = ${next}`
        yield* sql`delete from run_events where run_id = ${run} and seq = ${next}`
        // A row past the events in the same snapshot is still an addition.
        const past = failed(yield* whileTampered(
          sql`insert into opinions (run_id, round_id, agent, seq, direction, confidence)
            select run_id, round_id || '+', agent, ${next}, direction, confidence from opinions where run_id = ${run} order by seq desc limit 1`,
          Audit.verifyRun(run)
        ))
        expect(past).toMatchObject({ position: next, reason: `opinions has a row for event ${next}, past the run's last event: it was added` })
        expect(yield* Audit.verifyRun(run)).toMatchObject({ ok: true, entries: events, unfinished: "running" })
      }))

    it.effect("a run's recorded inputs changed after it ran are reported, and its replay says the recording was altered", () =>
      Effect.gen(function*() {
        const { run } = yield* record("inputs")
        const sql = yield* SqlClient.SqlClient
        const inputs = "its recorded inputs were changed after it ran"
        const tampers: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>, RegExp]> = [
          [
            "slippage",
            sql`update runs set strategy = jsonb_set(strategy, '{execution,slippageBps}', '50') where id = ${run}`,
            /^the run's strategy snapshot is not version 1 as its strategy's chain records it \(execution\.slippageBps was 5, now 50\)/
          ],
          ["seed", sql`update runs set seed = '9' where id = ${run}`, /^the run's seed is "9", not "0" as its RunStarted event records/],
          ["faults", sql`update runs set faults = '{"sma_crossover":{"every":3}}' where id = ${run}`, /^the run's faults is not what it was when the run was created/],
          ["detail", sql`update runs set event_detail = 'rounds' where id = ${run}`, /^the run's event detail is not what it was when the run was created/],
          ["source", sql`update runs set data_source = jsonb_set(data_source, '{config,bars}', '151') where id = ${run}`, /^the run's data source is not/]
        ]
        for (const [name, tamper, reason] of tampers) {
          const report = failed(yield* whileTampered(tamper, Audit.verifyRun(run)))
          expect(report.position, name).toBe(1)
          expect(report.reason, name).toMatch(reason)
          expect(report.reason, name).toContain(inputs)
          const altered = yield* whileTampered(tamper, Effect.map(Effect.flip(StoredRun.replay(run)), (error): Audit.AuditReport =>
            error instanceof StoredRun.RecordingAltered
              ? { ok: false, stream: error.run, position: error.position, reason: error.reason }
              : { ok: true, stream: String(error), entries: 0, head: "" }))
          expect(altered, name).toEqual({ ok: false, stream: run, position: 1, reason: report.reason })
        }
        // Untouched, it verifies and replays.
        const intact = yield* Audit.verifyRun(run)
        expect(intact.ok).toBe(true)
        expect(intact.ok && intact.unchecked).toBeUndefined()
        expect((yield* StoredRun.replay(run)).run).toBe(run)

        // A run recorded before runs were sealed: what the chains vouch for is still checked, and verify says what it cannot check.
        const older = yield* whileTampered(sql`update runs set inputs_seal = null where id = ${run}`, Audit.verifyRun(run))
        expect(older).toMatchObject({ ok: true, unchecked: expect.stringMatching(/^the run was recorded before runs sealed their inputs: /) })
        const olderChanged = failed(yield* whileTampered(
          Effect.zipRight(sql`update runs set inputs_seal = null where id = ${run}`, tampers[0]![1]),
          Audit.verifyRun(run)
        ))
        expect(olderChanged.reason).toMatch(tampers[0]![2])
      }))

    it.effect("a strategy's versions are an audit_log stream: verified, and every tamper reported", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const owner = yield* Users.ensureLocal()
        const base = strategy(2, "audited")
        const version = (percent: number) =>
          Schema.decodeUnknownSync(Strategy)({ ...Schema.encodeSync(Strategy)(base), sizing: { mode: "percent_of_equity", value: percent } })
        const v1 = yield* Strategies.saveVersion(owner, version(10))
        const v2 = yield* Strategies.saveVersion(owner, version(20))
        const v3 = yield* Strategies.saveVersion(owner, version(30))
        // The same content again is no new version and no new entry.
        expect(yield* Strategies.saveVersion(owner, version(30))).toEqual({ ...v3, created: false })
        expect([v1.version, v2.version, v3.version]).toEqual([1, 2, 3])
        const stream = `strategy:${v1.strategyId}`
        const entries = yield* sql<{ position: number; kind: string; entry: string }>`
          select position, kind, entry from audit_log where stream = ${stream} order by position`
        expect(entries.map((e) => [e.position, e.kind, JSON.parse(e.entry).version])).toEqual([
          [1, "StrategyVersionSaved", 1],
          [2, "StrategyVersionSaved", 2],
          [3, "StrategyVersionSaved", 3]
        ])
        const verify = Audit.verifyStream(stream)
        expect(yield* verify).toMatchObject({ ok: true, stream, entries: 3 })

        const changed = failed(yield* whileTampered(
          sql`update audit_log set entry = replace(entry, '"value":20', '"value":25') where stream = ${stream} and position = 2`,
          verify
        ))
        expect(changed).toMatchObject({ stream, position: 2 })
        expect(changed.reason).toContain("entry 2 (StrategyVersionSaved) does not verify")

        const deleted = failed(yield* whileTampered(sql`delete from audit_log where stream = ${stream} and position = 2`, verify))
        expect(deleted.position).toBe(2)
        expect(deleted.reason).toContain("entry 2 is missing")

        const swapped = failed(yield* whileTampered(swapFirstTwo(stream), verify))
        expect(swapped.position).toBe(1)
        expect(swapped.reason).toContain("does not follow")

        const relinked = failed(yield* whileTampered(
          sql`update audit_log set prev_hash = ${GENESIS} where stream = ${stream} and position = 3`,
          verify
        ))
        expect(relinked.position).toBe(3)
        expect((yield* verify).ok).toBe(true)

        // Against the strategy's recorded head: the last entry deleted is caught too.
        const whole = Audit.verifyStrategy(v1.strategyId)
        expect(yield* whole).toMatchObject({ ok: true, stream, entries: 3 })
        expect((yield* whileTampered(sql`delete from audit_log where stream = ${stream} and position = 3`, verify)).ok).toBe(true)
        const truncated = failed(yield* whileTampered(sql`delete from audit_log where stream = ${stream} and position = 3`, whole))
        expect(truncated.position).toBe(3)
        expect(truncated.reason).toContain("deleted at the end")
        expect((yield* whole).ok).toBe(true)
      }))

    it.effect("a run's control log (who paused, resumed, stopped, approved or rejected it, and when) is verified with it, and every tamper reported", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { run } = yield* record("controlled")
        const { run: other } = yield* record("controlled elsewhere")
        const root = new Principal({ userId: "usr_root", name: "root", role: "admin" })
        const alice = new Principal({ userId: "usr_alice", name: "alice", role: "user" })
        const id = run as RunId
        expect(yield* ControlAudit.record(id, "approve", alice, { round: "r1" })).toBe(true)
        expect(yield* ControlAudit.record(id, "reject", root, { round: "r2", reason: "too big" })).toBe(true)
        expect(yield* ControlAudit.record(id, "approve", root, { round: "r3" })).toBe(true)
        expect(yield* ControlAudit.record(other as RunId, "approve", root, { round: "r9" })).toBe(true)
        // A pause of a run its row does not say is paused did not take effect: not recorded.
        expect(yield* ControlAudit.record(id, "pause", root)).toBe(false)

        const stream = `control:${run}`
        const entries = yield* sql<{ position: number; kind: string; entry: string }>`
          select position, kind, entry from audit_log where stream = ${stream} order by position`
        expect(entries.map((e) => [e.position, e.kind])).toEqual([[1, "approve"], [2, "reject"], [3, "approve"]])
        const second = JSON.parse(entries[1]!.entry)
        expect(second).toEqual({ action: "reject", run, by: { id: "usr_root", name: "root" }, at: expect.any(String), round: "r2", reason: "too big" })
        expect(new Date(second.at).toISOString()).toBe(second.at)
        expect(yield* ControlAudit.history(id, 2)).toMatchObject({ count: 3, last: [{ action: "reject" }, { action: "approve", round: "r3" }] })

        const verify = Audit.verifyRun(run)
        expect(yield* verify).toMatchObject({ ok: true, stream: `run:${run}`, control: 3 })

        const changed = failed(yield* whileTampered(
          sql`update audit_log set entry = replace(entry, '"name":"root"', '"name":"alice"') where stream = ${stream} and position = 2`,
          verify
        ))
        expect(changed).toMatchObject({ stream, position: 2 })
        expect(changed.reason).toMatch(/^the run's control log .*: entry 2 \(reject\) does not verify/)

        const deleted = failed(yield* whileTampered(sql`delete from audit_log where stream = ${stream} and position = 2`, verify))
        expect(deleted).toMatchObject({ stream, position: 2 })
        expect(deleted.reason).toContain("entry 2 is missing")

        const truncated = failed(yield* whileTampered(sql`delete from audit_log where stream = ${stream} and position = 3`, verify))
        expect(truncated).toMatchObject({ stream, position: 3 })
        expect(truncated.reason).toContain("deleted at the end")

        const swapped = failed(yield* whileTampered(swapFirstTwo(stream), verify))
        expect(swapped).toMatchObject({ stream, position: 1 })
        expect(swapped.reason).toContain("does not follow")

        // The other run's first entry put in place of this run's first, whole: it is not this run's.
        const moved = failed(yield* whileTampered(
          Effect.all([
            sql`delete from audit_log where stream = ${stream} and position = 1`,
            sql`update audit_log set stream = ${stream} where stream = ${`control:${other}`} and position = 1`
          ]),
          verify
        ))
        expect(moved).toMatchObject({ stream, position: 1 })
        expect(moved.reason).toContain("moved from another run's log")

        const relabelled = failed(yield* whileTampered(sql`update audit_log set kind = 'approve' where stream = ${stream} and position = 2`, verify))
        expect(relabelled).toMatchObject({ stream, position: 2 })
        expect(relabelled.reason).toContain("kind (approve) is not what it says (reject)")

        expect(yield* verify).toMatchObject({ ok: true, control: 3 })
      }))
  })
}
