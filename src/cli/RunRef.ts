/**
 * How the command line names a stored run: its id (`run_…`) or `<strategy name>#<number>`, the way
 * `swarm runs list` shows it. A reference that cannot name any run (empty, absurdly long, with
 * control characters, or with a `#` not followed by a run number) is refused as bad input before
 * the database is opened; one that could but does not is the store's `RunNotFound`.
 */
import { Effect } from "effect"
import { UsageError } from "./CliError.js"

/** A strategy name is at most 100 characters; with `#` and a number, and room to spare. */
export const MAX_LENGTH = 200

/** Run numbers are Postgres `integer`s. */
const MAX_NUMBER = 2_147_483_647

/** Text as an error line shows it: quoted, cut short when long, control characters escaped. */
export const shown = (text: string, max = 60): string => {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text
  return JSON.stringify(cut)
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/** Why `text` cannot name a run, or `undefined` when it can. */
export const problem = (text: string): string | undefined => {
  if (text.trim() === "") return "is empty: give a run id (run_…) or <strategy>#<number>, as swarm runs list shows them"
  if (text.length > MAX_LENGTH) {
    return `is ${text.length} characters long (${shown(text, 24)}): a run id or <strategy>#<number> has at most ${MAX_LENGTH}`
  }
  if (CONTROL.test(text)) return `${shown(text)} contains control characters`
  const hash = text.lastIndexOf("#")
  if (hash >= 0) {
    const number = text.slice(hash + 1)
    if (hash === 0) return `${shown(text)} has no strategy name before the #: expected <strategy>#<number>`
    if (!/^\d{1,10}$/.test(number) || Number(number) < 1 || Number(number) > MAX_NUMBER) {
      return `${shown(text)} does not end in a run number: expected <strategy>#<number>, the number 1 or more`
    }
  }
  return undefined
}

/** `text` as a run reference, or a `UsageError` naming `field` (the argument: `<run>`, `<a>`…). */
export const check = (field: string, text: string): Effect.Effect<string, UsageError> => {
  const reason = problem(text)
  return reason === undefined ? Effect.succeed(text) : Effect.fail(new UsageError({ field, reason }))
}
