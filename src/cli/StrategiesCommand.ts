/**
 * `swarm strategies list | show | create | update | delete`: the strategies a server keeps for the
 * key's user. Strategy files are read as `swarm backtest` reads them (src/swarm/StrategyFile.ts),
 * so a bad one is refused here, naming the file and the field, before anything is sent. `show`
 * prints a version as a YAML strategy file, so `show > file`, an edit and `update` change it.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Either, Option } from "effect"
import * as StrategyFile from "../swarm/StrategyFile.js"
import { UsageError } from "./CliError.js"
import { checked, json } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RemoteView from "./RemoteView.js"
import { shown } from "./RunRef.js"
import type { Wiring } from "./Wiring.js"

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/** A strategy as commands name it: its name or its id (str_…), as `strategies list` shows them. */
export const strategyRef = (field: string, text: string): Effect.Effect<string, UsageError> =>
  text.trim() === ""
    ? Effect.fail(new UsageError({ field, reason: "is empty: give a strategy name or id (swarm strategies list shows them)" }))
    : text.length > 200 || CONTROL.test(text)
    ? Effect.fail(new UsageError({ field, reason: `${shown(text, 24)} cannot name a strategy (at most 200 characters, no control characters)` }))
    : Effect.succeed(text)

export const strategyArg = Args.text({ name: "strategy" }).pipe(Args.withDescription("The strategy: its name or its id (str_…)."))

const fileArg = Args.text({ name: "file" }).pipe(Args.withDescription("A strategy file: .json, .yaml or .yml (see examples/)."))

/**
 * `--strategy-version`: @effect/cli takes `--version` anywhere on the line as its own (print the
 * program's version), so the flag has the longer name; `Cli` passes `--version <n>` on to it.
 */
export const versionOption = (description: string) =>
  Options.integer("strategy-version").pipe(
    Options.withPseudoName("n"),
    Options.optional,
    Options.mapEffect(checked("--strategy-version", (n: number) =>
      Number.isInteger(n) && n >= 1 ? Either.right(n) : Either.left(`expected a version number, 1 or more, got ${n}`))),
    Options.withDescription(description)
  )

export const list = (io: Io, wiring: Wiring) =>
  Command.make("list", { json: json("Print the strategies as one JSON array on stdout."), ...Remote.options }, (flags) =>
    Remote.withRemote(flags, wiring)((remote) =>
      Effect.gen(function*() {
        const strategies = yield* remote.client.strategies.list().pipe(remote.call("strategy"))
        io.stdout(flags.json ? RemoteView.strategiesJson(strategies) : RemoteView.strategiesTable(strategies))
      })
    ).pipe(Effect.withSpan("swarm.strategies.list"))).pipe(
    Command.withDescription("List your strategies on the server: name, id, latest version, runs.")
  )

export const show = (io: Io, wiring: Wiring) =>
  Command.make("show", {
    strategy: strategyArg,
    version: versionOption("Show this version (default the latest)."),
    json: json("Print the version as one JSON document on stdout instead of YAML."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* strategyRef("<strategy>", flags.strategy)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const found = yield* remote.client.strategies.get({ strategy: ref, version: Option.getOrUndefined(flags.version) }).pipe(
            remote.call("strategy")
          )
          io.stdout(flags.json ? RemoteView.strategyJson(found) : RemoteView.strategyYaml(found))
        })
      )
    }).pipe(Effect.withSpan("swarm.strategies.show"))).pipe(
    Command.withDescription("Print a strategy version as a YAML strategy file (every default spelled out), or JSON.")
  )

export const create = (io: Io, wiring: Wiring) =>
  Command.make("create", { file: fileArg, json: json("Print the saved version as one JSON document on stdout."), ...Remote.options }, (flags) =>
    Effect.gen(function*() {
      const strategy = yield* StrategyFile.load(flags.file)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const saved = yield* remote.client.strategies.create({ strategy }).pipe(remote.call("strategy"))
          io.stdout(flags.json ? RemoteView.strategyJson(saved) : RemoteView.strategySaved("created", saved))
        })
      )
    }).pipe(Effect.withSpan("swarm.strategies.create"))).pipe(
    Command.withDescription("Save a new strategy from a file (its name is the strategy's name).")
  )

export const update = (io: Io, wiring: Wiring) =>
  Command.make("update", {
    strategy: strategyArg,
    file: fileArg,
    ifVersion: Options.integer("if-version").pipe(
      Options.optional,
      Options.withDescription("Only if this is still the latest version (the one `show` printed): refused if the strategy changed since.")
    ),
    json: json("Print the new version as one JSON document on stdout."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* strategyRef("<strategy>", flags.strategy)
      const body = yield* StrategyFile.load(flags.file)
      const ifVersion = Option.getOrUndefined(flags.ifVersion)
      if (ifVersion !== undefined && !(ifVersion >= 1)) return yield* new UsageError({ field: "--if-version", reason: `${ifVersion} is not a version (1 or more)` })
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const saved = yield* remote.client.strategies.update({ strategy: ref, body, ...(ifVersion === undefined ? {} : { ifVersion }) }).pipe(
            remote.call("strategy")
          )
          io.stdout(flags.json ? RemoteView.strategyJson(saved) : RemoteView.strategySaved("updated", saved))
        })
      )
    }).pipe(Effect.withSpan("swarm.strategies.update"))).pipe(
    Command.withDescription("Save a file as a new version of a strategy; runs of older versions keep theirs.")
  )

export const remove = (io: Io, wiring: Wiring) =>
  Command.make("delete", { strategy: strategyArg, ...Remote.options }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* strategyRef("<strategy>", flags.strategy)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          yield* remote.client.strategies.delete({ strategy: ref }).pipe(remote.call("strategy"))
          io.stdout(`deleted strategy ${shown(ref)}\n`)
        })
      )
    }).pipe(Effect.withSpan("swarm.strategies.delete"))).pipe(
    Command.withDescription("Delete a strategy; its runs are kept.")
  )

export const command = (io: Io, wiring: Wiring) =>
  Command.make("strategies").pipe(
    Command.withDescription("Your strategies on a server: list, show, create, update, delete."),
    Command.withSubcommands([list(io, wiring), show(io, wiring), create(io, wiring), update(io, wiring), remove(io, wiring)])
  )
