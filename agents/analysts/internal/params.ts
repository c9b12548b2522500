/** Parameter schemas the analyst models share. */
import { Schema } from "effect"

/** A look-back of whole bars, at least 1, with its default; messages name the field. */
export const period = (field: string, fallback: number) =>
  Schema.optionalWith(
    Schema.Number.pipe(
      Schema.int({ message: () => `${field} must be a whole number of bars` }),
      Schema.greaterThanOrEqualTo(1, { message: () => `${field} must be at least 1 bar` })
    ),
    { default: () => fallback, exact: true }
  )
