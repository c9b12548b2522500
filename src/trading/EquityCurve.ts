/**
 * A run's equity curve rebuilt from what it recorded: the ledger agent's marking (agents/Ledger.ts)
 * replayed over the run's bars and its fills. Each bar time is one point — cash plus every position
 * at its symbol's last close, after the fills of that time — which is the curve the run folded into
 * its own metrics, so figures over any part of it keep the run's definitions (docs/metrics.md).
 * Pure: the caller reads the bars and the fills; nothing here knows where they were kept.
 */
import { Either, Schema } from "effect"
import { MoneyOutOfRange } from "../../schemas/Execution.js"
import type { Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import type { Fill } from "../../schemas/Order.js"
import * as Ledger from "./Ledger.js"

/** What marking needs of a bar. */
export interface MarkedBar {
  readonly symbol: string
  readonly close: number
}

/** One bar time of the run with its bars (a feed's `Slice` is one). */
export interface MarkedSlice {
  readonly ts: number
  readonly bars: ReadonlyArray<MarkedBar>
}

export interface ReplayInput {
  readonly initialCash: Money
  /** The run's symbols (the ledger's universe: bars of other symbols mark nothing). */
  readonly symbols: ReadonlyArray<Symbol>
  /** The run's bar times in order, as its feed delivered them; the curve ends with the last one. */
  readonly slices: Iterable<MarkedSlice>
  /** The run's fills in the order they were booked; those after the last slice are not reached. */
  readonly fills: ReadonlyArray<Fill>
}

/** The curve cannot be rebuilt from these inputs: they are not what the run booked and marked. */
export class CurveNotRebuilt extends Schema.TaggedError<CurveNotRebuilt>()("CurveNotRebuilt", {
  reason: Schema.String
}) {
  override get message(): string {
    return this.reason
  }
}

/**
 * Replays the marking, calling `onPoint` with each bar time's point (strictly increasing times),
 * and gives the number of points. A fill is booked at its own time, which is always a bar time of
 * the run: a next-open fill at the bar it filled on, a same-close fill at the bar it was decided on
 * (booked before the next bar is marked, so that bar's point counts it, as the ledger's does). A
 * fill at no bar time, one the ledger refuses, or amounts past the exact money range are
 * `CurveNotRebuilt`: the run did not book those books, and no figure is made of them.
 */
export const replay = (
  input: ReplayInput,
  onPoint: (ts: Timestamp, equity: Money, exposed: boolean) => void
): Either.Either<number, CurveNotRebuilt> => {
  let state = Ledger.make({ cash: input.initialCash, symbols: input.symbols })
  const marks = new Float64Array(input.symbols.length)
  const fills = input.fills
  let next = 0
  let points = 0
  let previous = Number.NEGATIVE_INFINITY
  for (const slice of input.slices) {
    const ts = slice.ts
    if (!(ts > previous)) return Either.left(new CurveNotRebuilt({ reason: `the bars are not in time order at ${at(ts)}` }))
    previous = ts
    for (const bar of slice.bars) {
      const slot = state.slots.get(bar.symbol)
      if (slot !== undefined) marks[slot] = bar.close
    }
    for (; next < fills.length && fills[next]!.ts <= ts; next++) {
      const fill = fills[next]!
      if (fill.ts !== ts) {
        return Either.left(new CurveNotRebuilt({ reason: `the fill ${fill.id} at ${at(fill.ts)} is at no bar time of the run's data` }))
      }
      const booked = Ledger.applyFill(state, fill)
      if (Either.isLeft(booked)) {
        return Either.left(new CurveNotRebuilt({ reason: `the fill ${fill.id} cannot be booked: ${booked.left.field}: ${booked.left.reason}` }))
      }
      state = booked.right
    }
    let equity: Money
    try {
      equity = Ledger.equityFromMarks(state, marks)
    } catch (error) {
      if (!(error instanceof MoneyOutOfRange)) throw error
      return Either.left(new CurveNotRebuilt({ reason: `the books leave the exact money range at ${at(ts)}` }))
    }
    onPoint(ts as Timestamp, equity, Ledger.openPositions(state) > 0)
    points++
  }
  return Either.right(points)
}

const at = (ms: number): string => {
  const date = new Date(ms)
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString()
}
