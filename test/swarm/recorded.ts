/** What the swarm suites share: a backtest with its events and lines kept, and an analyst type that follows a script. */
import { Effect, Schema } from "effect"
import type { AnyModel, Model } from "../../agents/analysts/Model.js"
import { analysts } from "../../agents/registry.js"
import type { Direction } from "../../schemas/Opinion.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import * as Backtest from "../../src/swarm/Backtest.js"

export interface Recorded {
  readonly result: Backtest.Result
  readonly events: Array<RunEvent>
  readonly lines: Array<string>
}

/** A backtest with its events and their JSON lines kept, in order. */
export const record = (options: Backtest.Options) =>
  Effect.gen(function*() {
    const events: Array<RunEvent> = []
    const lines: Array<string> = []
    const result = yield* Backtest.run({
      ...options,
      onEvent: (event, json) => {
        events.push(event)
        lines.push(json)
      }
    })
    return { result, events, lines } satisfies Recorded
  })

export const ofTag = <T extends RunEvent["_tag"]>(events: ReadonlyArray<RunEvent>, tag: T) =>
  events.filter((e): e is Extract<RunEvent, { _tag: T }> => e._tag === tag)

/** On each bar of a symbol, what its script says for that bar (its last word after its end). */
export const scripted = (script: Readonly<Record<string, ReadonlyArray<Direction>>>): Model<{}, { bars: number }, {}> => ({
  type: "test_script",
  description: "test: a script's direction, bar by bar",
  config: Schema.Struct({}),
  horizon: () => 1,
  init: () => ({ bars: 0 }),
  update: (state, bar) => {
    const says = script[bar.symbol]!
    return { direction: says[Math.min(state.bars++, says.length - 1)]!, confidence: 1, features: {} }
  },
  explain: ({ direction }) => direction
})

/** The registry with `test_script` following `script`. */
export const registryOf = (script: Readonly<Record<string, ReadonlyArray<Direction>>>) =>
  new Map<string, AnyModel>([...analysts, ["test_script", scripted(script) as AnyModel]])

/**
 * How a run recorded before `RunStarted.workingOrders` and `fractionalCuts` started: every behaviour
 * before them, as new runs have them (`Backtest.Options.recordedStart`).
 */
export const recordedBefore = {
  reducedIntents: "worked",
  flatScoring: "not_long",
  lastRounds: "closed",
  breakers: "fills",
  analystProgress: "past_warm_up",
  downHalts: "settled",
  stateRejections: "standing"
} as const
