/**
 * The signal a model keeps in each symbol's state and overwrites on every bar (Model.ts: a signal
 * is valid until the next update of its state). The models write its features, then `give` it.
 */
import type { Types } from "effect"
import type { Direction } from "../../../schemas/Opinion.js"
import type { Features, Signal } from "../Model.js"

/** A signal its model may write: the one in its per-symbol state. */
export interface Slot<F extends Features> {
  direction: Direction
  confidence: number
  features: Types.Mutable<F>
}

/**
 * A slot for one symbol's state, around the features object it will keep rewriting. Give that
 * object every field it will have, NaN until the first bar: a field first stored as a double
 * stays one, and V8 then overwrites the number in place instead of boxing a new one on each bar.
 */
export const slot = <F extends Features>(features: Types.Mutable<F>): Slot<F> => ({ direction: "flat", confidence: NaN, features })

/** Set the slot's direction and confidence (its features written already) and hand it out. */
export const give = <F extends Features>(signal: Slot<F>, direction: Direction, confidence: number): Signal<F> => {
  signal.direction = direction
  signal.confidence = confidence
  return signal
}
