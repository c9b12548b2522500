/**
 * Reading a strategy from a file: JSON (`.json`) or YAML (`.yaml`, `.yml`), decoded with the
 * `Strategy` schema. Every problem is reported with the field it concerns, as a path a person can
 * find in the file (`agents[2].weight`, `risk.limits.maxPositionPct`); nothing is thrown.
 */
import { readFile, stat } from "node:fs/promises"
import { extname } from "node:path"
import { Effect, Either, ParseResult, Schema } from "effect"
import { parse as parseYaml } from "yaml"
import { Strategy } from "../../schemas/Strategy.js"

/** A strategy file is configuration, not data: anything larger is a mistake or an attack. */
export const MAX_BYTES = 1_000_000

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

/** Parse and decode a strategy from the text of `file` (its extension picks JSON or YAML). */
export const parseText = (text: string, file: string): Either.Either<Strategy, StrategyFileError> => {
  if (text.length > MAX_BYTES) return fail(file, `the file is larger than ${MAX_BYTES} bytes`)
  const extension = extname(file).toLowerCase()
  let raw: unknown
  try {
    if (extension === ".json") raw = JSON.parse(text)
    else if (extension === ".yaml" || extension === ".yml") {
      // Aliases are capped (no "billion laughs"), duplicate keys are an error, not a silent override.
      raw = parseYaml(text, { maxAliasCount: 100, uniqueKeys: true, prettyErrors: true })
    } else return fail(file, `unknown strategy file type "${extension}": use .json, .yaml or .yml`)
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error)
    return fail(file, `not valid ${extension === ".json" ? "JSON" : "YAML"}: ${reason}`)
  }
  return Either.mapLeft(
    Schema.decodeUnknownEither(Strategy, { errors: "all", onExcessProperty: "error" })(raw),
    (error) =>
      new StrategyFileError({
        file,
        problems: ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
          field: fieldOf(issue.path),
          message: issue.message
        }))
      })
  )
}

export const load = (file: string): Effect.Effect<Strategy, StrategyFileError> =>
  Effect.tryPromise({
    try: async () => {
      const info = await stat(file)
      if (!info.isFile()) throw new Error("not a file")
      if (info.size > MAX_BYTES) throw new Error(`the file is larger than ${MAX_BYTES} bytes`)
      return await readFile(file, "utf8")
    },
    catch: (error) =>
      new StrategyFileError({
        file,
        problems: [{ field: "", message: `cannot read it: ${error instanceof Error ? error.message : String(error)}` }]
      })
  }).pipe(Effect.flatMap((text) => parseText(text, file)))
