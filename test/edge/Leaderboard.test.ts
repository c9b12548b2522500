/**
 * The leaderboard ranks what a quant would: a figure null because it is unbounded in the good
 * direction (a profit factor with wins and no loss, a Sortino with no down day, a Calmar with no
 * drawdown) above every finite one, a figure null for want of data nowhere, a run that never
 * traded on its total return only (its drawdown of 0 is not the best risk record); and an admin's
 * board tells two users' strategies of one name apart. Runs with chosen metrics, on every back-end.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { RpcTest } from "@effect/rpc"
import { Effect, Layer, Schema } from "effect"
import { Principal, Unauthorized } from "../../schemas/Auth.js"
import { LeaderboardEntry, LeaderboardRpcs } from "../../schemas/Rpc.js"
import { Authenticator } from "../../src/edge/Auth.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { LeaderboardHandlers } from "../../src/edge/RpcHandlers.js"
import * as Strategies from "../../src/store/Strategies.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { stubAuth } from "./fixtures.js"

const USERS = ["carol", "dave", "erin", "frank"] as const

const principals: Record<string, Principal> = {
  ...Object.fromEntries(USERS.map((name) => [`key-${name}`, new Principal({ userId: name, name, role: "user" })])),
  "key-root": new Principal({ userId: "root", name: "root", role: "admin" })
}
const StubAuth = Layer.succeed(Authenticator, stubAuth((key) =>
  principals[key] === undefined ? Effect.fail(new Unauthorized({ reason: "unknown key" })) : Effect.succeed(principals[key]!)))

const users = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const name of USERS) yield* sql`insert into users (id, name, role) values (${name}, ${name}, 'user')`
  yield* sql`insert into users (id, name, role) values ('root', 'root', 'admin')`
}).pipe(Effect.orDie))

const leaderboardOf = (key: string, metric: "totalReturn" | "sharpe" | "sortino" | "calmar" | "maxDrawdown" | "winRate" | "profitFactor") =>
  Effect.flatMap(
    Effect.provide(RpcTest.makeClient(LeaderboardRpcs, { flatten: true }), clientKey(key)),
    (client) => client("leaderboard", { metric })
  )

/** A completed run's metrics: one that traded (three trades, two won), with `over` in place. */
const metrics = (over: Record<string, number | null>) => ({
  totalReturn: 0.01,
  cagr: 0.1,
  annualVolatility: 0.2,
  sharpe: 1,
  sortino: 1,
  calmar: 1,
  maxDrawdown: 0.1,
  exposure: 0.5,
  tradeCount: 3,
  winningTrades: 2,
  losingTrades: 1,
  winRate: 2 / 3,
  profitFactor: 2,
  grossProfit: 2_000_000,
  grossLoss: -1_000_000,
  ...over
})

/** A run that never traded: flat equity, no trade, no position. */
const idle = {
  totalReturn: 0,
  cagr: 0,
  annualVolatility: 0,
  sharpe: null,
  sortino: null,
  calmar: null,
  maxDrawdown: 0,
  exposure: 0,
  tradeCount: 0,
  winningTrades: 0,
  losingTrades: 0,
  winRate: null,
  profitFactor: null,
  grossProfit: 0,
  grossLoss: 0
}

let runCount = 0
/** Each run's `<strategy>#<number>`, by id. */
const refs = new Map<string, string>()
/** A board's runs as `<strategy>#<number>` and their values. */
const ranks = (entries: ReadonlyArray<{ readonly run: string; readonly value: number | null }>) => entries.map((e) => [refs.get(e.run), e.value])

/** A completed run numbered `number` of `owner`'s strategy `name` (made on its first run), with `figures` as its metrics. */
const completed = (owner: string, name: string, number: number, figures: Record<string, number | null>, status = "completed") =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [found] = yield* sql<{ id: string }>`select id from strategies where owner_id = ${owner} and name = ${name}`
    const strategy = found?.id ?? (yield* Strategies.create(owner, smaStrategy(name))).id
    const id = `lb-${++runCount}`
    refs.set(id, `${name}#${number}`)
    yield* sql`
      insert into runs (id, strategy_id, strategy_version, number, owner_id, mode, status, seed, strategy, data_source,
        data_fingerprint, event_detail, metrics)
      values (${id}, ${strategy}, 1, ${number}, ${owner}, 'backtest', ${status}, 'seed', '{}'::jsonb, '{}'::jsonb, 'x', 'full',
        ${JSON.stringify(figures)}::jsonb)`
    return id
  }).pipe(Effect.orDie)

for (const backend of backends) {
  const server = Layer.mergeAll(LeaderboardHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(Layer.mergeAll(StubAuth, users)),
    Layer.provideMerge(backend.store)
  )
  layer(server, { timeout: startTimeout, excludeTestServices: true })(`leaderboard (${backend.name})`, (it) => {
    it.scoped("profit factor: wins and no loss rank above every finite factor, the larger gross profit first; break-even only is not ranked", () =>
      Effect.gen(function*() {
        // A strategy's losing run (0.33) and its run of one win and no loss: the latter is its best.
        yield* completed("carol", "SMA crossover", 1, metrics({ profitFactor: 0.33, winningTrades: 1, losingTrades: 2 }))
        const flawless = yield* completed("carol", "SMA crossover", 2, metrics({ profitFactor: null, tradeCount: 1, winningTrades: 1, losingTrades: 0, grossProfit: 500_000 }))
        const bigger = yield* completed("carol", "momentum", 1, metrics({ profitFactor: null, tradeCount: 4, winningTrades: 4, losingTrades: 0, grossProfit: 9_000_000 }))
        const finite = yield* completed("carol", "mean reversion", 1, metrics({ profitFactor: 2.5 }))
        // Only break-even trades, and no trade at all: no factor, not ranked.
        yield* completed("carol", "break-even", 1, metrics({ profitFactor: null, tradeCount: 2, winningTrades: 0, losingTrades: 0, grossProfit: 0 }))
        yield* completed("carol", "idle", 1, idle)
        // Not completed: not ranked.
        yield* completed("carol", "failed", 1, metrics({ profitFactor: 99 }), "failed")

        const ranked = yield* leaderboardOf("key-carol", "profitFactor")
        expect(ranks(ranked)).toEqual([["momentum#1", null], ["SMA crossover#2", null], ["mean reversion#1", 2.5]])
        expect(ranked.map((e) => e.run)).toEqual([bigger, flawless, finite])
      }))

    it.scoped("drawdown and the ratios: a run that never traded is not ranked on them (on total return it is); a buy-and-hold run is", () =>
      Effect.gen(function*() {
        yield* completed("dave", "idle", 1, idle)
        yield* completed("dave", "careful", 1, metrics({ maxDrawdown: 0.05, totalReturn: 0.02, sharpe: 0.5, winRate: 0.5 }))
        yield* completed("dave", "risky", 1, metrics({ maxDrawdown: 0.2, totalReturn: -0.03, sharpe: -0.4, winRate: 0.25 }))
        // Held one position from start to end: no closed trade, but it took risk.
        yield* completed("dave", "held", 1, { ...idle, totalReturn: 0.04, annualVolatility: 0.3, sharpe: 0.9, sortino: 1.2, maxDrawdown: 0.1, exposure: 1 })

        const names = (entries: ReadonlyArray<{ readonly run: string }>) => entries.map((e) => refs.get(e.run))
        expect(names(yield* leaderboardOf("key-dave", "maxDrawdown"))).toEqual(["careful#1", "held#1", "risky#1"])
        expect(names(yield* leaderboardOf("key-dave", "sharpe"))).toEqual(["held#1", "careful#1", "risky#1"])
        expect(names(yield* leaderboardOf("key-dave", "winRate"))).toEqual(["careful#1", "risky#1"])
        expect(ranks(yield* leaderboardOf("key-dave", "totalReturn"))).toEqual([
          ["held#1", 0.04],
          ["careful#1", 0.02],
          ["idle#1", 0],
          ["risky#1", -0.03]
        ])
        // Pages of it: from rank offset + 1, none past the end.
        const page = (offset: number) =>
          Effect.flatMap(
            Effect.provide(RpcTest.makeClient(LeaderboardRpcs, { flatten: true }), clientKey("key-dave")),
            (client) => client("leaderboard", { metric: "totalReturn", limit: 2, offset })
          )
        expect(names(yield* page(0))).toEqual(["held#1", "careful#1"])
        expect(names(yield* page(2))).toEqual(["idle#1", "risky#1"])
        expect(names(yield* page(3))).toEqual(["risky#1"])
        expect(yield* page(4)).toEqual([])
      }))

    it.scoped("sortino with no down day and calmar with no drawdown rank first; with flat equity or no CAGR they are not ranked", () =>
      Effect.gen(function*() {
        yield* completed("erin", "steady", 1, metrics({ sortino: null, calmar: null, maxDrawdown: 0, cagr: 0.3, totalReturn: 0.05 }))
        yield* completed("erin", "normal", 1, metrics({ sortino: 1.5, calmar: 4 }))
        // Traded, but its equity never moved a day (no volatility), and no CAGR (one point in time).
        yield* completed("erin", "flat", 1, metrics({ sortino: null, calmar: null, annualVolatility: 0, cagr: null, maxDrawdown: 0 }))
        expect(ranks(yield* leaderboardOf("key-erin", "sortino"))).toEqual([["steady#1", null], ["normal#1", 1.5]])
        expect(ranks(yield* leaderboardOf("key-erin", "calmar"))).toEqual([["steady#1", null], ["normal#1", 4]])
      }))

    it.scoped("an admin's board names each run's owner and reference: two users' strategies of one name are told apart", () =>
      Effect.gen(function*() {
        yield* completed("frank", "Breakout", 1, metrics({ totalReturn: 0.07 }))
        yield* completed("frank", "Breakout", 2, metrics({ totalReturn: 0.09 }))
        yield* completed("carol", "Breakout", 1, metrics({ totalReturn: 0.08 }))
        const admin = (yield* leaderboardOf("key-root", "totalReturn")).filter((e) => e.strategy === "Breakout")
        expect(admin.map((e) => [e.owner, e.ref, e.value])).toEqual([["frank", "Breakout#2", 0.09], ["carol", "Breakout#1", 0.08]])
        // A user's board is theirs only.
        expect((yield* leaderboardOf("key-frank", "totalReturn")).map((e) => [e.owner, e.ref])).toEqual([["frank", "Breakout#2"]])
      }))
  })
}

describe("leaderboard entries across versions", () => {
  it("an entry without owner and reference (an older server) decodes; a client reading only the older fields takes a newer entry", () => {
    const older = { strategy: "Breakout", run: "bt-1", value: 0.08 }
    expect(Schema.decodeUnknownSync(LeaderboardEntry)(older)).toEqual(older)
    const OlderEntry = Schema.Struct({ strategy: Schema.String, run: Schema.String, value: Schema.NullOr(Schema.Number) })
    expect(Schema.decodeUnknownSync(OlderEntry)({ ...older, ref: "Breakout#1", owner: "carol" })).toEqual(older)
  })
})
