/**
 * What a stored run's own loop runs in (its `pace`, the read of its end once its lease is given up)
 * holds the database's pool, not only its `SqlClient`: `Database.withDeadline` takes the server's
 * statement timeout only where it finds the pool (and the database is shared), and given the
 * client alone it would only give up on a query, which would run on — holding its connection, and
 * a write landing — behind a lock. On every back-end (see fixtures/backends.ts).
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { PgPool } from "../../src/store/Pool.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { stored } from "./fixtures/workload.js"

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`a stored run's own context (${backend.name})`, (it) => {
    it.effect("its pace is given the database's pool: a deadline there is the server's too on a shared database", () =>
      Effect.gen(function*() {
        const seen: Array<boolean> = []
        const { result } = yield* StoredRun.backtest(stored(1, 40, {
          name: "paced in its context",
          pace: () => Effect.map(Effect.serviceOption(PgPool), (pool) => void seen.push(Option.exists(pool, (p) => p.shared)))
        }))
        expect(result.status).toBe("completed")
        expect(seen.length).toBeGreaterThan(0)
        expect(new Set(seen)).toEqual(new Set([backend.name === "postgres"]))
      }), { timeout: 60_000 })
  })
}
