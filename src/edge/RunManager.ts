/**
 * The runs a server process executes: started from the RPC edge, each in a fiber of the manager's
 * scope, recorded by the store as it goes and published on the event bus (SSE and RPC streams
 * follow it there). Operators stop, pause and resume them; a paper run is the same execution paced
 * in wall-clock time — each slice waits for its moment, at the requested speed. Closing the
 * manager's scope (the server shutting down) interrupts the live runs: what they committed stays,
 * and `swarm resume` (or the next start) goes on with them.
 */
import { fileURLToPath } from "node:url"
import type { SqlClient } from "@effect/sql"
import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer } from "effect"
import type { Principal } from "../../schemas/Auth.js"
import type { RunId, Symbol } from "../../schemas/Ids.js"
import {
  Conflict,
  InvalidRequest,
  type RunData,
  type RunNotFound,
  type StartRun,
  type StrategyNotFound,
  Unavailable
} from "../../schemas/Rpc.js"
import { EventBus } from "../bus/EventBus.js"
import * as DataSource from "../market/DataSource.js"
import * as Synthetic from "../market/Synthetic.js"
import type { Strategy } from "../../schemas/Strategy.js"
import { PgPool } from "../store/Pool.js"
import * as Runs from "../store/Runs.js"
import * as Strategies from "../store/Strategies.js"
import * as StoredRun from "../store/StoredRun.js"
import { unavailable } from "./Unavailable.js"

/** The sample data shipped with Swarm (data/), for runs started on `{ _tag: "sample" }`. */
const SAMPLE = fileURLToPath(new URL("../../data", import.meta.url))

interface Live {
  readonly run: RunId
  readonly owner: string
  readonly mode: "backtest" | "paper"
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  /** Open while the run may go on; closed while an operator has it paused. */
  readonly gate: Effect.Latch
  paused: boolean
}

export interface RunManagerService {
  /** Start a run of one of the principal's strategies; answers once its row exists (it runs on). */
  readonly start: (
    principal: Principal,
    request: typeof StartRun.Type
  ) => Effect.Effect<Runs.RunRecord, StrategyNotFound | InvalidRequest | Unavailable>
  readonly stop: (principal: Principal, ref: string) => Effect.Effect<Runs.RunRecord, RunNotFound | Conflict | Unavailable>
  readonly pause: (principal: Principal, ref: string) => Effect.Effect<Runs.RunRecord, RunNotFound | Conflict | Unavailable>
  readonly resume: (principal: Principal, ref: string) => Effect.Effect<Runs.RunRecord, RunNotFound | Conflict | Unavailable>
  /** Runs executing in this process. */
  readonly live: () => number
}

export class RunManager extends Context.Tag("swarm/edge/RunManager")<RunManager, RunManagerService>() {}

/** The data source of a run request, for the strategy's symbols. */
const dataSourceOf = (data: RunData, strategy: Strategy, seed: number): DataSource.DataSource =>
  data._tag === "sample"
    ? DataSource.csv([SAMPLE], { symbols: strategy.symbols })
    : DataSource.synthetic({
      ...Synthetic.defaults,
      seed: data.seed ?? seed,
      symbols: strategy.symbols as unknown as readonly [Symbol, ...Array<Symbol>],
      bars: data.bars
    })

export const layer = Layer.scoped(
  RunManager,
  Effect.gen(function*() {
    const bus = yield* EventBus
    const scope = yield* Effect.scope
    const context = yield* Effect.context<SqlClient.SqlClient | PgPool>()
    const live = new Map<RunId, Live>()

    const ownerOf = (principal: Principal) => (principal.role === "admin" ? undefined : principal.userId)

    const start: RunManagerService["start"] = (principal, request) =>
      unavailable(Effect.gen(function*() {
        const found = yield* Strategies.find(principal.userId, request.strategy, request.version)
        const seed = request.seed ?? "0"
        const source = dataSourceOf(request.data, found.strategy, Number(seed))
        const feed = yield* DataSource.open(source).pipe(
          Effect.mapError((error) => new InvalidRequest({ field: "data", reason: error.reason }))
        )
        const created = yield* Deferred.make<Runs.Created>()
        const gate = yield* Effect.makeLatch(true)
        const mode = request.mode
        const speed = request.speed ?? 1
        let previous: number | undefined
        const execution = StoredRun.backtest({
          strategy: found.strategy,
          feed,
          dataSource: source,
          seed,
          owner: principal.userId,
          mode,
          onCreated: (c) => Deferred.unsafeDone(created, Exit.succeed(c)),
          onEvent: (event, json) => bus.publish(event.run, { seq: event.seq, tag: event._tag, json }),
          pace: () => gate.await,
          ...(mode === "paper"
            ? {
              beforeSlice: (ts: number) =>
                Effect.suspend(() => {
                  const wait = previous === undefined ? 0 : Math.max(0, (ts - previous) / speed)
                  previous = ts
                  return Effect.zipRight(gate.await, wait > 0 ? Effect.sleep(Duration.millis(wait)) : Effect.void)
                })
            }
            : {})
        }).pipe(Effect.provide(context))
        const fiber = yield* Effect.forkIn(execution, scope)
        // The row exists, or the execution failed before it did.
        const made = yield* Effect.raceFirst(
          Deferred.await(created),
          Effect.flatMap(Fiber.await(fiber), (exit) =>
            Exit.isFailure(exit)
              ? Effect.fail(new InvalidRequest({ field: "strategy", reason: String(exit.cause) }))
              : Deferred.await(created))
        )
        const entry: Live = { run: made.id, owner: principal.userId, mode, fiber, gate, paused: false }
        live.set(made.id, entry)
        fiber.addObserver(() => {
          live.delete(made.id)
          bus.end(made.id)
        })
        return yield* Runs.get(made.id).pipe(
          Effect.catchTag("RunNotFound", () => new Unavailable({ reason: `run ${made.id} was created but cannot be read back` }))
        )
      })).pipe(Effect.provide(context))

    const liveOf = (principal: Principal, ref: string) =>
      unavailable(Effect.gen(function*() {
        const record = yield* Runs.get(ref, ownerOf(principal))
        const entry = live.get(record.id)
        if (entry === undefined) {
          return yield* new Conflict({ reason: `run ${record.id} is ${record.status}${record.status === "running" ? " in no live process here" : ""}` })
        }
        return { record, entry }
      }))

    const stop: RunManagerService["stop"] = (principal, ref) =>
      Effect.gen(function*() {
        const { entry, record } = yield* liveOf(principal, ref)
        yield* Fiber.interrupt(entry.fiber)
        return yield* unavailable(Runs.get(record.id))
      }).pipe(Effect.provide(context))

    const pause: RunManagerService["pause"] = (principal, ref) =>
      Effect.gen(function*() {
        const { entry, record } = yield* liveOf(principal, ref)
        if (entry.paused) return yield* new Conflict({ reason: `run ${record.id} is paused already` })
        entry.paused = true
        yield* entry.gate.close
        yield* unavailable(Runs.setStatus(record.id, "paused"))
        return yield* unavailable(Runs.get(record.id))
      }).pipe(Effect.provide(context))

    const resume: RunManagerService["resume"] = (principal, ref) =>
      Effect.gen(function*() {
        const { entry, record } = yield* liveOf(principal, ref)
        if (!entry.paused) return yield* new Conflict({ reason: `run ${record.id} is not paused` })
        entry.paused = false
        yield* unavailable(Runs.setStatus(record.id, "running"))
        yield* entry.gate.open
        return yield* unavailable(Runs.get(record.id))
      }).pipe(Effect.provide(context))

    return { start, stop, pause, resume, live: () => live.size } satisfies RunManagerService
  })
)

