/**
 * A choice among words a person types (`sizing.mode`, a rule's `days`, `risk.approval.policy`): a
 * `Schema.Literal` whose error lists every word once and quotes what was given. A bare literal
 * union fails once per member, and a strategy file printed `Expected "mon", actual "monday"`
 * seven times — each line naming one word as if it were the only one (the RPC edge, which reports
 * the first problem, said only `Expected "mon"`).
 */
import type { Array } from "effect"
import { Schema } from "effect"

/** The most of a value an error quotes (as src/internal/clip.ts, which schemas cannot import). */
const QUOTED = 100

const quoted = (value: unknown): string => {
  let text: string
  try {
    text = JSON.stringify(value) ?? String(value)
  } catch {
    text = String(value)
  }
  return text.length <= QUOTED ? text : `${text.slice(0, QUOTED)}… (${text.length} characters)`
}

/** `a or b`, `one of a, b, c`. */
const choices = (literals: ReadonlyArray<string>): string =>
  literals.length === 2 ? `${literals[0]} or ${literals[1]}` : `one of ${literals.join(", ")}`

/**
 * `Schema.Literal(...literals)`, failing with `expected a or b, got "c"`. The message overrides the
 * members' (`override`): a union's own message otherwise yields to theirs.
 */
export const oneOf = <const Literals extends Array.NonEmptyReadonlyArray<string>>(...literals: Literals) =>
  Schema.Literal(...literals).annotations({
    message: (issue) => ({ message: `expected ${choices(literals)}, got ${quoted(issue.actual)}`, override: true })
  })
