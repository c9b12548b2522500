/**
 * A decoding error's issues in a person's words. Effect's formatter says what it expected in the
 * schema's own terms: `Expected Struct (Encoded side), actual 5` for a settings object given as a
 * number, `Expected ReadonlyArray<a string matching the pattern ^[A-Za-z0-9^]… & Brand<"Symbol">>,
 * actual 5` for a list of symbols, `Expected { readonly [x: string]: unknown }` for an agent's
 * params. Those type names mean nothing to someone editing a strategy file or calling the RPC
 * edge; here they become `expected an object, got 5`, `expected a list, got 5`. A schema's own
 * message (`an amount here must not be negative`, `expected one of mon, tue, …`) is left as it is,
 * and so is a bare `Expected <name>` this does not know: the name is then the schema's identifier.
 */
import { ParseResult } from "effect"
import { clip, clipAfter, QUOTED } from "./clip.js"

/** Effect's wording for a value of the wrong type: `Expected <what>, actual <value>`. */
export const BARE = /^Expected (.+), actual (.*)$/s

/** The plain words for what a schema's type expected (`Struct (Encoded side)`: `an object`), or undefined when these are not known. */
export const wordsFor = (expected: string): string | undefined => {
  if (/^Struct \((Encoded|Type) side\)$/.test(expected) || /^\{ .*\}$/s.test(expected)) return "an object"
  if (/^(Readonly)?Array<.*>$/s.test(expected) || /^readonly .*\[\]$/s.test(expected)) return "a list"
  // A refinement's own description: `a positive number`, `an integer`.
  if (/^an? /.test(expected)) return expected
  switch (expected) {
    case "string":
      return "a string"
    case "number":
      return "a number"
    case "boolean":
      return "true or false"
  }
  // A union of literals: `"a" | "b" | "c"`.
  const literals = expected.split(" | ")
  if (literals.length > 1 && literals.every((l) => /^"[^"]*"$/.test(l))) {
    const words = literals.map((l) => l.slice(1, -1))
    return words.length === 2 ? `${words[0]} or ${words[1]}` : `one of ${words.join(", ")}`
  }
  return undefined
}

/** Effect's wording for a field a struct does not have: `is unexpected, expected: "a" | "b"`. */
const UNEXPECTED = /^is unexpected, expected: (.*)$/s

/** `message` with Effect's type names put in plain words (`expected an object, got 5`); other messages as given. */
export const plainly = (message: string): string => {
  const unexpected = UNEXPECTED.exec(message)
  if (unexpected !== null) {
    const known = unexpected[1]!.split(" | ")
    return known.every((k) => /^"[^"]*"$/.test(k)) ? `is not a known field here (known: ${known.map((k) => k.slice(1, -1)).join(", ")})` : message
  }
  const bare = BARE.exec(message)
  if (bare === null) return message
  const words = wordsFor(bare[1]!)
  return words === undefined ? message : `expected ${words}, got ${bare[2]!}`
}

export interface Issue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

/** The issues of a decoding error, as `ParseResult.ArrayFormatter` lists them, each message `plainly`. */
export const issuesOf = (error: ParseResult.ParseError): Array<Issue> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({ path: issue.path, message: plainly(issue.message) }))

/**
 * A decoding error in one line — its first issue's field (a dotted path) and what is wrong there,
 * and how many more issues there are — for a message that names a stored value that does not
 * decode: Effect's tree runs to dozens of indented lines, which a run's `failure`, a log line or an
 * RPC answer carried whole.
 */
export const oneLineOf = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  if (first === undefined) return clip(ParseResult.TreeFormatter.formatErrorSync(error).replace(/\s+/g, " ").trim(), 4 * QUOTED)
  const field = first.path.length === 0 ? "" : `${clip(first.path.map(String).join("."))}: `
  const more = issues.length === 1 ? "" : ` (and ${issues.length - 1} more issue${issues.length === 2 ? "" : "s"})`
  return `${field}${plainly(clipAfter(first.message, ", actual ")).replace(/\s+/g, " ").trim()}${more}`
}
