/**
 * `swarm rules list | put | delete`: a strategy's rules on a server. Each change is a new version
 * of the strategy (runs of older versions keep theirs). A rule is given as a file (.json, .yaml,
 * .yml) or inline JSON, decoded here with the `Rule` schema so that a bad one is refused naming
 * its field (`rule.params.percent: a percent must be at most 100`) before anything is sent.
 */
import { Args, Command } from "@effect/cli"
import { Effect, Either, ParseResult, Schema } from "effect"
import { readFile, stat } from "node:fs/promises"
import { extname } from "node:path"
import { Rule, RuleId } from "../../schemas/Rule.js"
import { decodeFileText } from "../internal/utf16.js"
import { firstLine, MultipleDocuments, parseStrict } from "../internal/yaml.js"
import { MAX_BYTES, problemsOf, StrategyFileError } from "../swarm/StrategyFile.js"
import { UsageError } from "./CliError.js"
import { json } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RemoteView from "./RemoteView.js"
import { strategyArg, strategyRef } from "./StrategiesCommand.js"
import type { Wiring } from "./Wiring.js"

/** How an inline rule is named in error lines, where a file would be. */
const INLINE = "<rule>"

const problem = (file: string, message: string, field = "") => new StrategyFileError({ file, problems: [{ field, message }] })

/**
 * Text without its leading byte-order mark (Windows editors write one, and a rule pasted from such
 * a file brings it along): JSON.parse refused it ("Unexpected token '\ufeff'"), while strategy
 * files (StrategyFile.parseText) and CSV data skip it.
 */
const withoutByteOrderMark = (text: string) => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)

/** A rule from inline JSON (`{"id": …}`) or from the file `given` names; every problem names its field. */
export const parseRule = (given: string): Effect.Effect<Rule, StrategyFileError> =>
  Effect.gen(function*() {
    const inline = given.trimStart().startsWith("{")
    const file = inline ? INLINE : given
    const raw: unknown = inline
      ? yield* Effect.try({
        try: () => JSON.parse(withoutByteOrderMark(given)) as unknown,
        catch: (error) => problem(INLINE, `not valid JSON: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`)
      })
      : yield* readRuleFile(given)
    return yield* Either.mapLeft(
      Schema.decodeUnknownEither(Rule, { errors: "all", onExcessProperty: "error" })(raw),
      (error) =>
        new StrategyFileError({ file, problems: problemsOf(error, ["rule"]) })
    )
  })

const readRuleFile = (file: string): Effect.Effect<unknown, StrategyFileError> =>
  Effect.gen(function*() {
    const extension = extname(file).toLowerCase()
    if (extension !== ".json" && extension !== ".yaml" && extension !== ".yml") {
      return yield* problem(file, `unknown rule file type "${extension}": use .json, .yaml or .yml, or give the rule as inline JSON ({"id": …})`)
    }
    const text = yield* Effect.tryPromise({
      try: async () => {
        const info = await stat(file)
        if (!info.isFile()) throw new Error("not a file")
        if (info.size > MAX_BYTES) throw new Error(`the file is larger than ${MAX_BYTES} bytes`)
        return await readFile(file)
      },
      catch: (error) => problem(file, `cannot read it: ${error instanceof Error ? error.message : String(error)}`)
    }).pipe(
      // UTF-16 with a byte-order mark (Notepad's "Unicode", PowerShell 5's `>`), as strategy files.
      Effect.flatMap((bytes) => Either.mapLeft(decodeFileText(bytes), (reason) => problem(file, reason)))
    )
    return yield* Effect.try({
      try: () => (extension === ".json" ? JSON.parse(withoutByteOrderMark(text)) : parseStrict(withoutByteOrderMark(text))) as unknown,
      catch: (error) =>
        error instanceof MultipleDocuments
          ? problem(file, `a rule file holds one YAML document, and a second starts at line ${error.line} (after a "---" or "..." line)`)
          : problem(file, `not valid ${extension === ".json" ? "JSON" : "YAML"}: ${firstLine(error)}`)
    })
  })

export const list = (io: Io, wiring: Wiring) =>
  Command.make("list", { strategy: strategyArg, json: json("Print the rules as one JSON array on stdout."), ...Remote.options }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* strategyRef("<strategy>", flags.strategy)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const rules = yield* remote.client.rules.list({ strategy: ref }).pipe(remote.call("rule"))
          io.stdout(flags.json ? RemoteView.rulesJson(rules) : RemoteView.rulesTable(rules))
        })
      )
    }).pipe(Effect.withSpan("swarm.rules.list"))).pipe(
    Command.withDescription("List a strategy's rules (its latest version), in the order they are evaluated.")
  )

export const put = (io: Io, wiring: Wiring) =>
  Command.make("put", {
    strategy: strategyArg,
    rule: Args.text({ name: "rule" }).pipe(
      Args.withDescription("The rule: a .json, .yaml or .yml file, or inline JSON such as '{\"id\":\"cap\",\"name\":\"Cap\",\"kind\":\"max_position_percent\",\"params\":{\"percent\":20}}'.")
    ),
    json: json("Print the new strategy version as one JSON document on stdout."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* strategyRef("<strategy>", flags.strategy)
      const rule = yield* parseRule(flags.rule)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const saved = yield* remote.client.rules.put({ strategy: ref, rule }).pipe(remote.call("rule"))
          io.stdout(flags.json ? RemoteView.strategyJson(saved) : RemoteView.strategySaved(`put rule ${rule.id} in`, saved))
        })
      )
    }).pipe(Effect.withSpan("swarm.rules.put"))).pipe(
    Command.withDescription("Add a rule to a strategy, or replace the rule with its id: a new version of the strategy.")
  )

export const remove = (io: Io, wiring: Wiring) =>
  Command.make("delete", {
    strategy: strategyArg,
    rule: Args.text({ name: "rule-id" }).pipe(Args.withDescription("The rule's id, as `swarm rules list` shows it.")),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* strategyRef("<strategy>", flags.strategy)
      const id = yield* Schema.decodeUnknown(RuleId)(flags.rule).pipe(
        Effect.mapError((error) => new UsageError({ field: "<rule-id>", reason: ParseResult.TreeFormatter.formatErrorSync(error).split("\n").at(-1)!.trim() }))
      )
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const saved = yield* remote.client.rules.delete({ strategy: ref, rule: id }).pipe(remote.call("rule"))
          io.stdout(RemoteView.strategySaved(`deleted rule ${id} from`, saved))
        })
      )
    }).pipe(Effect.withSpan("swarm.rules.delete"))).pipe(
    Command.withDescription("Remove a rule from a strategy: a new version of the strategy.")
  )

export const command = (io: Io, wiring: Wiring) =>
  Command.make("rules").pipe(
    Command.withDescription("A strategy's rules on a server: list, put, delete."),
    Command.withSubcommands([list(io, wiring), put(io, wiring), remove(io, wiring)])
  )
