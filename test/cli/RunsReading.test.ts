/**
 * Reading stored runs from the command line, on a fresh database of its own (embedded PGlite, or a
 * throw-away database on `DATABASE_URL`'s server): whose runs they are (`runs list`'s owner
 * column), what a run that was stopped or failed did, the metric settings Sharpe and Sortino were
 * computed with (`runs compare`, `leaderboard`), and a run's stored events (`runs events`).
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type * as Database from "../../src/store/Database.js"
import { migrate } from "../../src/store/Migrations.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Users from "../../src/store/Users.js"
import { freshDatabase } from "../store/fresh.js"
import { stored } from "../store/fixtures/workload.js"
import { lines, swarm } from "./harness.js"

const migrated = Layer.effectDiscard(Effect.orDie(migrate)).pipe(Layer.provideMerge(freshDatabase))

/** The test's database as a store layer the command opens without owning it. */
const store = Effect.map(Effect.context<Database.Database>(), (context) => Layer.succeedContext(context))

/** A small stored backtest of a synthetic market: its id and `<strategy>#<number>`. */
const run = (name: string, extra: Partial<StoredRun.Options> = {}) =>
  Effect.map(Effect.orDie(StoredRun.backtest({ ...stored(2, 200, { name }), ...extra })), (r) => ({ id: r.run, ref: `${name}#${r.number}` }))

layer(migrated, { timeout: "120 seconds", excludeTestServices: true })("swarm reading stored runs", (it) => {
  it.effect("runs list --local: two users' runs of the same <strategy>#<number> are told apart by an owner column, by name", () =>
    Effect.gen(function*() {
      const bob = yield* Effect.orDie(Users.create("bob"))
      const mine = yield* run("Six analysts")
      const bobs = yield* run("Six analysts", { owner: bob.id })
      expect([mine.ref, bobs.ref]).toEqual(["Six analysts#1", "Six analysts#1"])
      const listed = yield* swarm(["runs", "list", "--local"], { store: yield* store })
      expect(listed.code, listed.stderr).toBe(0)
      const rows = lines(listed.stdout)
      expect(rows[1]).toMatch(/│ run +│ owner +│ id +│ status +│/)
      expect(listed.stdout).toMatch(new RegExp(`│ Six analysts#1 │ bob +│ ${bobs.id} │`))
      expect(listed.stdout).toMatch(new RegExp(`│ Six analysts#1 │ local +│ ${mine.id} │`))
      // One owner's runs only: no column, as a server's list of one user's runs.
      const one = yield* swarm(["runs", "list", "--local", "--limit", "1"], { store: yield* store })
      expect(lines(one.stdout)[1]).toMatch(/│ run +│ id +│ status +│/)
      // --json names the owner too: their id, and their name.
      const json = JSON.parse((yield* swarm(["runs", "list", "--local", "--json"], { store: yield* store })).stdout) as Array<
        { id: string; owner: string; ownerName?: string }
      >
      expect(json.find((r) => r.id === bobs.id)).toMatchObject({ owner: bob.id, ownerName: "bob" })
      expect(json.find((r) => r.id === mine.id)).toMatchObject({ owner: "local", ownerName: "local" })
    }))
})
