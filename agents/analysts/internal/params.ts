/** Parameter schemas the analyst models share. */
import { Schema } from "effect"

/**
 * The longest look-back any analyst takes: 10,000 bars — forty years of daily bars, a week of
 * minute bars. Indicators allocate their window up front (`Float64Array`s per symbol), so an
 * unbounded one was accepted with the strategy and then crashed the analyst on every bar
 * (`slow: 1e12`), or took gigabytes; past this bound a strategy is refused, naming the field.
 */
export const MAX_PERIOD = 10_000

/**
 * A look-back of whole bars, from `minimum` (default 1; `why` says why a larger one) to
 * `MAX_PERIOD`, with its default; messages name the field.
 */
export const period = (field: string, fallback: number, minimum: number = 1, why?: string) =>
  Schema.optionalWith(
    Schema.Number.pipe(
      Schema.int({ message: () => `${field} must be a whole number of bars` }),
      Schema.greaterThanOrEqualTo(minimum, {
        message: () => `${field} must be at least ${minimum} bar${minimum === 1 ? "" : "s"}${why === undefined ? "" : ` (${why})`}`
      }),
      Schema.lessThanOrEqualTo(MAX_PERIOD, { message: () => `${field} must be at most ${MAX_PERIOD} bars` })
    ),
    { default: () => fallback, exact: true }
  )
