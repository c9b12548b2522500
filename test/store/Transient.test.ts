/**
 * Which database failures are tried again (src/store/Transient.ts): a lost or refused connection,
 * a database closed to connections, too many connections, a serialisation failure — not a
 * statement refused for what it says.
 */
import { SqlError } from "@effect/sql/SqlError"
import { describe, expect, it } from "@effect/vitest"
import { transient } from "../../src/store/Transient.js"

const pg = (code: string | undefined, message: string) => Object.assign(new Error(message), code === undefined ? {} : { code })

describe("transient database failures", () => {
  it("a lost or refused connection is; a refused statement is not", () => {
    const yes = [
      pg("57P01", "terminating connection due to administrator command"),
      pg("08006", "connection failure"),
      pg("53300", "sorry, too many clients already"),
      pg("40001", "could not serialize access"),
      pg("55000", 'database "x" is not currently accepting connections'),
      pg("ECONNRESET", "read ECONNRESET"),
      pg(undefined, "Connection terminated unexpectedly"),
      pg(undefined, "timeout exceeded when trying to connect"),
      new SqlError({ cause: pg("57P01", "terminating connection"), message: "Failed to execute statement" })
    ]
    const no = [
      pg("P0001", "refused by a trigger"),
      pg("23505", "duplicate key value violates unique constraint"),
      pg("55000", "lastval is not yet defined in this session"),
      pg("22P02", "invalid input syntax"),
      pg(undefined, "something else"),
      "a string",
      undefined,
      new SqlError({ cause: pg("23503", "violates foreign key"), message: "Failed to execute statement" })
    ]
    expect(yes.map(transient)).toEqual(yes.map(() => true))
    expect(no.map(transient)).toEqual(no.map(() => false))
  })
})
