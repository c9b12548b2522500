/**
 * Reading a strategy from a file: JSON (`.json`) or YAML (`.yaml`, `.yml`), decoded with the
 * `Strategy` schema. Every problem is reported once, with the field it concerns, as a path a person
 * can find in the file (`agents[2].weight`, `risk.limits.maxPositionPct`); nothing is thrown.
 */
import { readFile, stat } from "node:fs/promises"
import { extname } from "node:path"
import { Effect, Either, ParseResult, Schema } from "effect"
import { givenProblem, Strategy } from "../../schemas/Strategy.js"
import { clip, clipAfter, QUOTED } from "../internal/clip.js"
import { BARE, plainly, wordsFor } from "../internal/issues.js"
import { findUnstorable } from "../internal/storableText.js"
import { decodeFileText } from "../internal/utf16.js"
import { firstLine, MultipleDocuments, parseStrict } from "../internal/yaml.js"

/** A strategy file is configuration, not data: anything larger is a mistake or an attack. */
export const MAX_BYTES = 1_000_000

/**
 * The deepest a strategy file may nest (the schema needs about 6 levels). Deeper values are
 * refused before decoding: the schema's error for one prints the value recursively, and 5,000
 * levels overflowed the stack (an internal error, exit 1).
 */
export const MAX_DEPTH = 64

export const Problem = Schema.Struct({ field: Schema.String, message: Schema.String })
export type Problem = typeof Problem.Type

export class StrategyFileError extends Schema.TaggedError<StrategyFileError>()("StrategyFileError", {
  file: Schema.String,
  problems: Schema.Array(Problem)
}) {
  override get message(): string {
    return `${this.file}: ${this.problems.map((p) => (p.field === "" ? p.message : `${p.field}: ${p.message}`)).join("; ")}`
  }
}

/** `["agents", 2, "weight"]` → `agents[2].weight`. */
export const fieldOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((text, key) => (typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`), "")

const fail = (file: string, message: string, field = "") => Either.left(new StrategyFileError({ file, problems: [{ field, message }] }))

/** A problem as an error line shows it: the field's path, and a schema's quoted value clipped (src/internal/clip.ts) in plain words (src/internal/issues.ts). */
export const problem = (field: string, message: string): Problem => ({ field: clip(field), message: plainly(clipAfter(message, ", actual ")) })

/**
 * A decoding error's problems, one line per field (`prefix` before each path). A union fails once
 * per member it tried, all at one path: `initialCash: true` read `Expected string, actual true`
 * then `Expected number, actual true`. At a field with several problems, a member's own words
 * about the value (`expected a decimal amount …`) are the line and the bare `Expected …` of the
 * others go; where all are bare, they become one `expected a string or a number, got true`. Effect's
 * type names are put in plain words (src/internal/issues.ts).
 */
export const problemsOf = (error: ParseResult.ParseError, prefix: ReadonlyArray<PropertyKey> = []): Array<Problem> => {
  const byField = new Map<string, Array<string>>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const field = fieldOf([...prefix, ...issue.path])
    const messages = byField.get(field)
    if (messages === undefined) byField.set(field, [issue.message])
    else if (!messages.includes(issue.message)) messages.push(issue.message)
  }
  const problems: Array<Problem> = []
  for (const [field, messages] of byField) {
    if (messages.length === 1) {
      problems.push(problem(field, messages[0]!))
      continue
    }
    const own = messages.filter((message) => !BARE.test(message))
    if (own.length > 0) {
      for (const message of own) problems.push(problem(field, message))
      continue
    }
    const bare = messages.map((message) => BARE.exec(message)!)
    const expected = [...new Set(bare.map((match) => wordsFor(match[1]!) ?? match[1]!))]
    const choices = expected.length === 2 ? expected.join(" or ") : `one of ${expected.join(", ")}`
    problems.push({ field: clip(field), message: `${clip(`expected ${choices}`, 4 * QUOTED)}, got ${clip(bare[0]![2]!)}` })
  }
  return problems
}

/** A container in a parsed document, with the way back to the root (paths are made only for the one reported). */
interface Node {
  readonly value: object
  readonly depth: number
  readonly key: PropertyKey | undefined
  readonly parent: Node | undefined
}

/**
 * The path of the first value nesting deeper than `MAX_DEPTH` levels, or undefined. Iterative (a
 * recursive walk is what overflowed) and bounded by the depth even for a YAML alias to its own
 * ancestor.
 */
const tooDeep = (root: unknown): ReadonlyArray<PropertyKey> | undefined => {
  if (typeof root !== "object" || root === null) return undefined
  const stack: Array<Node> = [{ value: root, depth: 1, key: undefined, parent: undefined }]
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (node.depth > MAX_DEPTH) {
      const path: Array<PropertyKey> = []
      for (let at: Node | undefined = node; at?.key !== undefined; at = at.parent) path.push(at.key)
      return path.reverse()
    }
    const entries: Iterable<[PropertyKey, unknown]> = Array.isArray(node.value) ? node.value.entries() : Object.entries(node.value)
    for (const [key, value] of entries) {
      if (typeof value === "object" && value !== null) stack.push({ value, depth: node.depth + 1, key, parent: node })
    }
  }
  return undefined
}

/** Where a too-deep value is, for people: its path down to the last named field (`agents[0].params.fast`), not 64 `[0]`s. */
const deepField = (path: ReadonlyArray<PropertyKey>): string => {
  let named = path.length
  while (named > 0 && typeof path[named - 1] === "number") named--
  return fieldOf(path.slice(0, Math.min(named, MAX_DEPTH)))
}

const nestedTooDeep = `nests deeper than ${MAX_DEPTH} levels: a strategy is configuration, and never needs that`

/**
 * The first key given twice in one object of `text`, valid JSON, and its path; or undefined. Keys are compared as JSON reads them (`"a"` and `"\u0061"` are one key). A scan of
 * the text, for JSON.parse tells nothing of keys it replaced.
 */
export const duplicateKey = (text: string): { readonly key: string; readonly path: ReadonlyArray<PropertyKey> } | undefined => {
  interface Frame {
    readonly keys: Set<string> | undefined
    /** In an object: the key being read next (after `{` or `,`); in an array, unused. */
    expectKey: boolean
    /** The key or index of the value being read, for the path. */
    at: PropertyKey
  }
  const stack: Array<Frame> = []
  const path = () => stack.slice(0, -1).map((f) => f.at)
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === "\"") {
      let end = i + 1
      while (text[end] !== "\"") end += text[end] === "\\" ? 2 : 1
      const top = stack.at(-1)
      if (top?.keys !== undefined && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string
        if (top.keys.has(key)) return { key, path: [...path(), key] }
        top.keys.add(key)
        top.at = key
        top.expectKey = false
      }
      i = end
    } else if (c === "{" || c === "[") {
      stack.push({ keys: c === "{" ? new Set() : undefined, expectKey: c === "{", at: 0 })
    } else if (c === "}" || c === "]") {
      stack.pop()
    } else if (c === ",") {
      const top = stack.at(-1)
      if (top !== undefined) {
        if (top.keys !== undefined) top.expectKey = true
        else top.at = (top.at as number) + 1
      }
    }
  }
  return undefined
}

/** Parse and decode a strategy from the text of `file` (its extension picks JSON or YAML). */
export const parseText = (given: string, file: string): Either.Either<Strategy, StrategyFileError> => {
  if (given.length > MAX_BYTES) return fail(file, `the file is larger than ${MAX_BYTES} bytes`)
  // A byte-order mark (Windows editors write one) is no part of the text: JSON.parse refused it,
  // while the YAML parser and the CSV loader skip it.
  const text = given.charCodeAt(0) === 0xfeff ? given.slice(1) : given
  const extension = extname(file).toLowerCase()
  let raw: unknown
  try {
    if (extension === ".json") raw = JSON.parse(text)
    else if (extension === ".yaml" || extension === ".yml") {
      // Aliases capped, duplicate keys and unresolved tags errors (src/internal/yaml.ts).
      raw = parseStrict(text)
    } else return fail(file, `unknown strategy file type "${extension}": use .json, .yaml or .yml`)
  } catch (error) {
    // The YAML parser recurses: deep enough collections overflow its stack, which it reports as
    // RESOURCE_EXHAUSTION (or, outside its guard, as the RangeError itself).
    if (error instanceof RangeError || (error as { readonly code?: unknown } | null)?.code === "RESOURCE_EXHAUSTION") {
      return fail(file, nestedTooDeep)
    }
    if (error instanceof MultipleDocuments) {
      return fail(file, `a strategy file holds one YAML document, and a second starts at line ${error.line} (after a "---" or "..." line)`)
    }
    const reason = firstLine(error)
    return fail(file, `not valid ${extension === ".json" ? "JSON" : "YAML"}: ${clip(reason, 4 * QUOTED)}`)
  }
  const deep = tooDeep(raw)
  if (deep !== undefined) return fail(file, nestedTooDeep, clip(deepField(deep)))
  // JSON.parse keeps the last of two same keys: `"slippageBps": 5, …, "slippageBps": 500` ran at 500, silently.
  const twice = extension === ".json" ? duplicateKey(text) : undefined
  if (twice !== undefined) return fail(file, "is given twice in its object (JSON would keep the last silently): give it once", clip(fieldOf(twice.path)))
  // Text no database keeps (the run is stored with its strategy) and `__proto__` keys.
  const unstorable = findUnstorable(raw)
  if (unstorable !== undefined) return fail(file, unstorable.reason, clip(fieldOf(unstorable.path)))
  return Either.flatMap(
    Either.mapLeft(
      Schema.decodeUnknownEither(Strategy, { errors: "all", onExcessProperty: "error" })(raw),
      (error) =>
        new StrategyFileError({ file, problems: problemsOf(error) })
    ),
    (strategy) => {
      const refused = givenProblem(strategy)
      return refused === undefined ? Either.right(strategy) : fail(file, refused.reason, fieldOf(refused.path))
    }
  )
}

export const load = (file: string): Effect.Effect<Strategy, StrategyFileError> =>
  Effect.tryPromise({
    try: async () => {
      const info = await stat(file)
      if (!info.isFile()) throw new Error("not a file")
      if (info.size > MAX_BYTES) throw new Error(`the file is larger than ${MAX_BYTES} bytes`)
      return await readFile(file)
    },
    catch: (error) =>
      new StrategyFileError({
        file,
        problems: [{ field: "", message: `cannot read it: ${error instanceof Error ? error.message : String(error)}` }]
      })
  }).pipe(
    // UTF-16 with a byte-order mark (Notepad's "Unicode", PowerShell 5's `>`) read as UTF-8 was a
    // "not valid JSON" quoting garbage and NULs.
    Effect.flatMap((bytes) => Either.mapLeft(decodeFileText(bytes), (message) => new StrategyFileError({ file, problems: [{ field: "", message }] }))),
    Effect.flatMap((text) => parseText(text, file))
  )
