/**
 * The demo feed: a seeded random walk. Its own timer ticks it on `Clock` time; each tick moves
 * the price (randomness from Effect's `Random`, so a seeded `Random` replays the same prices) and
 * tells the coordinator. After its last tick it stops itself: a normal stop, not a crash.
 */
import { Duration, Effect, Random } from "effect"
import * as Actor from "../actor/Actor.js"
import type { ActorRef } from "../actor/ActorRef.js"
import { type CoordinatorMessage, MarketUpdate, Tick } from "./protocol.js"

export interface Options {
  /** Resolves once the tree is up. */
  readonly coordinator: Effect.Effect<ActorRef<CoordinatorMessage, "dropOldest">>
  readonly ticks: number
  readonly every: Duration.DurationInput
  readonly startPrice: number
}

export const make = (options: Options) =>
  Actor.make({
    protocol: Tick,
    setup: (context) =>
      Effect.gen(function*() {
        const coordinator = yield* options.coordinator
        yield* context.scheduleRepeatedly(new Tick(), options.every)
        return { coordinator, seq: 0, price: options.startPrice }
      }),
    behavior: (state, _tick, context) =>
      Effect.gen(function*() {
        const move = yield* Random.nextRange(-0.01, 0.01)
        const price = Math.round(state.price * (1 + move) * 100) / 100
        const seq = state.seq + 1
        yield* state.coordinator.tell(new MarketUpdate({ seq, price }))
        if (seq >= options.ticks) yield* context.stop
        return { ...state, seq, price }
      })
  })
