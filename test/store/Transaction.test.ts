/**
 * `transaction`: a commit the database refuses (a deferred constraint) is the `SqlError` it is,
 * and the transaction's writes are gone — where @effect/sql's `withTransaction` alone makes it a
 * defect that no caller's handling sees. A failure of the body is its own; a defect stays one.
 */
import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { transaction } from "../../src/store/Transaction.js"
import { backends, startTimeout } from "./fixtures/backends.js"

for (const backend of backends) {
  layer(backend.database, { timeout: startTimeout, excludeTestServices: true })(`transaction (${backend.name})`, (it) => {
    it.effect("a commit refused by a deferred constraint fails with its SqlError, and nothing is written; the body's failures and defects are its own", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`create table refused_at_commit (id int primary key, ok boolean not null)`)
        yield* sql.unsafe(`create function refuse_not_ok() returns trigger language plpgsql as $$
          begin if not new.ok then raise exception 'row % is not ok', new.id; end if; return new; end $$`)
        yield* sql.unsafe(`create constraint trigger refuse_not_ok after insert on refused_at_commit deferrable initially deferred
          for each row execute function refuse_not_ok()`)

        // The insert passes; the commit is refused.
        const refused = yield* Effect.exit(transaction(sql, sql`insert into refused_at_commit ${sql.insert({ id: 1, ok: false })}`))
        expect(Exit.isFailure(refused) && Cause.isFailType(refused.cause)).toBe(true)
        const error = Exit.isFailure(refused) ? Cause.failureOption(refused.cause) : undefined
        expect(error?._tag === "Some" && error.value instanceof SqlError && String(error.value.cause)).toContain("row 1 is not ok")
        expect(yield* sql`select id from refused_at_commit`).toEqual([])

        // A commit that succeeds; a body that fails (rolled back, its own error); a body that dies (a defect still).
        yield* transaction(sql, sql`insert into refused_at_commit ${sql.insert({ id: 2, ok: true })}`)
        const failed = yield* Effect.flip(transaction(sql, Effect.zipRight(sql`insert into refused_at_commit ${sql.insert({ id: 3, ok: true })}`, Effect.fail("no" as const))))
        expect(failed).toBe("no")
        const died = yield* Effect.exit(transaction(sql, Effect.zipRight(sql`insert into refused_at_commit ${sql.insert({ id: 4, ok: true })}`, Effect.die("boom"))))
        expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
        expect((yield* sql<{ id: number }>`select id from refused_at_commit order by id`).map((row) => row.id)).toEqual([2])
      }))
  })
}
