/**
 * Shared set-up for the trading spine's agent tests: a discrete-event `World` with an actor system
 * in it (virtual time, as a backtest runs), a `RunLog` whose events are collected, bars, orders and
 * fills built the way the desk builds them, and small recording actors that stand in for an agent's
 * peers.
 */
import { Effect, Exit, Schema, Scope, Stream } from "effect"
import type { AgentId, OrderId, RoundId, RunId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { LifecycleEvent } from "../../schemas/Lifecycle.js"
import type { Bar } from "../../schemas/Market.js"
import { ExecutionConfig } from "../../schemas/Execution.js"
import type { Fill, FillTiming, Order, Side } from "../../schemas/Order.js"
import type { RunEventTag } from "../../schemas/RunEvent.js"
import {
  type BooksView,
  type Book,
  DeskProtocol,
  type Judge,
  LedgerProtocol,
  type MarketOpen,
  type PlaceOrders,
  type RebaseRiskMarks,
  RiskProtocol
} from "../../schemas/TradingProtocol.js"
import * as Actor from "../../src/actor/Actor.js"
import type { ActorRef } from "../../src/actor/ActorRef.js"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import { type EventOf, RunLog } from "../../src/swarm/RunLog.js"
import { World } from "../../src/swarm/World.js"
import * as FillModel from "../../src/trading/FillModel.js"
import * as Money from "../../src/trading/Money.js"

/** Tuesday 2 January 2024, 00:00 UTC. */
export const DAY0 = Date.UTC(2024, 0, 2)
export const HOUR = 3_600_000
export const DAY = 86_400_000
/** `h` hours into `day` days after DAY0. */
export const at = (day: number, h = 0): Timestamp => (DAY0 + day * DAY + h * HOUR) as Timestamp

export const AAA = "AAA" as Symbol
export const BBB = "BBB" as Symbol
export const RUN = "test-run" as RunId

export const units = Money.fromUnits

// --- the world -----------------------------------------------------------------------------------

export interface Spine {
  readonly world: World
  readonly log: RunLog
  /** Every event of the log, in order. */
  readonly events: Array<EventOf<RunEventTag>>
  /** The actor system's lifecycle events (crashes, restarts). */
  readonly lifecycle: Array<LifecycleEvent>
  /** Run an effect that needs the system to completion, moving virtual time while it waits on timers. */
  readonly inSystem: <A, E>(effect: Effect.Effect<A, E, ActorSystem.ActorSystem>) => A
  /** Start an effect (a tell) and run everything runnable; virtual time does not move. */
  readonly send: (effect: Effect.Effect<unknown, unknown>) => void
  /** The events of one type, in order. */
  readonly ofTag: <T extends RunEventTag>(tag: T) => Array<EventOf<T>>
  readonly close: () => void
}

/** A world at virtual time `start` with an actor system and a run log whose events are collected. */
export const makeSpine = (start: number = DAY0): Spine => {
  const world = Effect.runSync(World.make({ start, seed: "spine" }))
  const scope = Effect.runSync(Scope.make())
  const lifecycle: Array<LifecycleEvent> = []
  const system = world.runOrThrow(
    Effect.gen(function*() {
      const system = yield* ActorSystem.make()
      yield* Stream.runForEach(yield* system.lifecycle, (e) => Effect.sync(() => lifecycle.push(e))).pipe(Effect.forkScoped)
      return system
    }).pipe(Scope.extend(scope))
  )
  const log = new RunLog(RUN, () => world.now)
  const events: Array<EventOf<RunEventTag>> = []
  log.subscribe((event) => events.push(event))
  return {
    world,
    log,
    events,
    lifecycle,
    inSystem: (effect) => world.runOrThrow(Effect.provideService(effect, ActorSystem.ActorSystem, system)),
    send: (effect) => {
      world.start(effect)
    },
    ofTag: <T extends RunEventTag>(tag: T) => events.filter((e): e is EventOf<T> => e._tag === tag),
    close: () => world.runOrThrow(Scope.close(scope, Exit.void))
  }
}

/** Run `body` in a fresh spine, closed afterwards (also when an expectation fails). */
export const inSpine = (body: (spine: Spine) => void, start?: number) => () => {
  const spine = makeSpine(start)
  try {
    body(spine)
  } finally {
    spine.close()
  }
}

// --- market data, orders, fills --------------------------------------------------------------------

export const bar = (symbol: Symbol, ts: number, prices: { open?: number; close: number }): Bar => {
  const open = prices.open ?? prices.close
  return {
    symbol,
    ts: ts as Timestamp,
    open,
    high: Math.max(open, prices.close),
    low: Math.min(open, prices.close),
    close: prices.close,
    volume: 1_000
  }
}

/** The default execution model: next_open, no slippage, no commission. */
export const execution = (fields: Partial<typeof ExecutionConfig.Encoded> = {}): ExecutionConfig =>
  Schema.decodeUnknownSync(ExecutionConfig)(fields)

export const order = (spec: {
  readonly symbol: Symbol
  readonly side: Side
  readonly quantity: number
  readonly decidedAt: number
  readonly fillTiming?: FillTiming
  /** The round (and id); default `<symbol>@<decidedAt>`. */
  readonly round?: string
  /** Default `run/<round>`, as the risk officer makes it. */
  readonly key?: string
}): Order => {
  const round = spec.round ?? `${spec.symbol}@${spec.decidedAt}`
  return {
    id: round as OrderId,
    idempotencyKey: spec.key ?? `${RUN}/${round}`,
    round: round as RoundId,
    symbol: spec.symbol,
    side: spec.side,
    quantity: spec.quantity,
    type: "market",
    decidedAt: spec.decidedAt as Timestamp,
    fillTiming: spec.fillTiming ?? "next_open"
  }
}

/** The fill the desk makes of `o` on `b` (with the default execution model). */
export const fillOf = (o: Order, b: Bar): Fill => {
  const filled = FillModel.fill(o, b, execution())
  if (filled._tag === "Left") throw new Error(`not fillable: ${filled.left.reason}`)
  return filled.right
}

// --- stand-ins for peers -----------------------------------------------------------------------------

/** A ledger that records what it is told and answers ViewBooks with `view()` (if given). */
export const recordingLedger = (view?: () => BooksView) => {
  const books: Array<Book> = []
  const views: Array<number> = []
  const rebased: Array<RebaseRiskMarks> = []
  const spec = Actor.make({
    protocol: LedgerProtocol,
    initial: undefined as void,
    behavior: (_s, message, ctx) =>
      Effect.suspend(() => {
        switch (message._tag) {
          case "Book":
            books.push(message)
            return Effect.void
          case "ViewBooks":
            views.push(message.asOf)
            return view === undefined ? Effect.sync(() => void ctx.replyLater(message)) : ctx.reply(message, view())
          case "CloseBooks":
            return Effect.dieMessage("the recording ledger has no books to close")
          case "RebaseRiskMarks":
            rebased.push(message)
            return Effect.void
        }
      })
  })
  return { spec, books, views, rebased }
}

/** A desk that records what it is told. */
export const recordingDesk = () => {
  const opens: Array<MarketOpen> = []
  const placed: Array<PlaceOrders> = []
  const spec = Actor.make({
    protocol: DeskProtocol,
    initial: undefined as void,
    behavior: (_s, message) =>
      Effect.sync(() => {
        if (message._tag === "MarketOpen") opens.push(message)
        else if (message._tag === "PlaceOrders") placed.push(message)
      })
  })
  return { spec, opens, placed, orders: () => placed.flatMap((p) => p.orders) }
}

/**
 * A risk officer that records the Judge requests and answers each with everything placed — except
 * those `silent(n)` (n from 1) says to leave unanswered.
 */
export const recordingRisk = (
  silent: (n: number) => boolean = () => false,
  /** The rounds it says are still worked (a reduced intent's target not reached); default none. */
  working: (judged: Judge) => ReadonlyArray<RoundId> = () => [],
  /** The rounds it says it refused, and of them those the halted state alone refused (`standing`); default none. */
  refusing: (judged: Judge) => { readonly refused: ReadonlyArray<RoundId>; readonly standing: ReadonlyArray<RoundId> } = () => ({ refused: [], standing: [] })
) => {
  const judged: Array<Judge> = []
  const spec = Actor.make({
    protocol: RiskProtocol,
    initial: undefined as void,
    behavior: (_s, message, ctx) =>
      Effect.suspend(() => {
        if (message._tag !== "Judge") return Effect.void
        judged.push(message)
        if (silent(judged.length)) return Effect.sync(() => void ctx.replyLater(message))
        const { refused, standing } = refusing(message)
        return ctx.reply(message, {
          placed: message.decisions.length - refused.length,
          rejected: refused.length,
          pending: 0,
          blocked: [],
          refused,
          working: working(message),
          ...(standing.length === 0 ? {} : { standing })
        })
      })
  })
  return { spec, judged }
}

/** A typed ref for agents that take their peers as `() => ref`. */
export const wire = <M>(ref: ActorRef<M, "backpressure">) => () => ref

export const agent = (name: string) => name as AgentId
