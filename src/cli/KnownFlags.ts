/**
 * A flag the command does not take, named before @effect/cli parses the line: its parse reports
 * the first thing it cannot fit, so `swarm backtest --local …` said `--strategy: is required`
 * (the unknown flag left the rest unread) instead of the flag that was wrong. The flags each
 * command takes are read from the command tree itself, so every subcommand is checked alike.
 */
import type { Command, Usage } from "@effect/cli"
import { CommandDescriptor } from "@effect/cli"
import { Option } from "effect"
import { UsageError } from "./CliError.js"
import { shown } from "./RunRef.js"

/**
 * A command descriptor's shape, as @effect/cli builds it (internal/commandDescriptor.ts): a
 * command with its options and arguments, one mapped, or one with subcommands. Its public API
 * gives the usage of one command but walks subcommands only one level down.
 */
type Node =
  | { readonly _tag: "Standard" | "GetUserInput"; readonly name: string }
  | { readonly _tag: "Map"; readonly command: Node }
  | { readonly _tag: "Subcommands"; readonly parent: Node; readonly children: ReadonlyArray<Node> }

/** The flags a command takes: each name, and whether a value follows it. */
type Flags = ReadonlyMap<string, boolean>

/** What @effect/cli reads on every command line itself (`--log-level` is taken out before, Cli.logLevelOf). */
const BUILT_IN: Flags = new Map([["--help", false], ["-h", false], ["--version", false], ["--wizard", false], ["--completions", true]])

const flagsOfUsage = (usage: Usage.Usage, into: Map<string, boolean>): void => {
  switch (usage._tag) {
    case "Named":
      for (const name of usage.names) if (name.startsWith("-")) into.set(name, Option.isSome(usage.acceptedValues))
      return
    case "Optional":
    case "Repeated":
      return flagsOfUsage(usage.usage, into)
    case "Alternation":
    case "Concat":
      flagsOfUsage(usage.left, into)
      return flagsOfUsage(usage.right, into)
    case "Empty":
    case "Mixed":
      return
  }
}

const standard = (node: Node): Node => (node._tag === "Map" ? standard(node.command) : node._tag === "Subcommands" ? standard(node.parent) : node)

const nameOf = (node: Node): string => {
  const leaf = standard(node)
  return leaf._tag === "Standard" || leaf._tag === "GetUserInput" ? leaf.name : ""
}

const childrenOf = (node: Node): ReadonlyArray<Node> =>
  node._tag === "Map" ? childrenOf(node.command) : node._tag === "Subcommands" ? node.children : []

/**
 * The command `argv` names (its words: `runs list`) with the flags it and the commands above it
 * take; none when a word names no command (@effect/cli's parse says which).
 */
const commandOf = (root: Node, argv: ReadonlyArray<string>): { readonly words: ReadonlyArray<string>; readonly flags: Flags } | undefined => {
  const flags = new Map(BUILT_IN)
  const words: Array<string> = []
  let node = root
  let at = 0
  for (;;) {
    flagsOfUsage(CommandDescriptor.getUsage(standard(node) as unknown as CommandDescriptor.Command<unknown>), flags)
    const children = childrenOf(node)
    if (children.length === 0) return { words, flags }
    // The subcommand's word: the first one that is no flag (the groups take no flags of their own).
    while (at < argv.length && argv[at]!.startsWith("-")) at++
    const child = children.find((c) => nameOf(c) === argv[at])
    if (child === undefined) return undefined
    words.push(argv[at]!)
    node = child
    at++
  }
}

/**
 * The first `--flag` on `argv` that the command it names does not take, as `--local: unknown
 * option for swarm backtest`. A value after a flag that takes one is passed over (a `--reason`
 * may start with dashes); nothing after `--` is read. With `--help` too: @effect/cli then said
 * the same wrong thing (`--data: is required`) instead of the help.
 */
export const unknownFlag = <Name extends string, R, E, A>(command: Command.Command<Name, R, E, A>, argv: ReadonlyArray<string>): Option.Option<UsageError> => {
  const found = commandOf((command as unknown as { readonly descriptor: Node }).descriptor, argv)
  if (found === undefined) return Option.none()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") break
    if (!arg.startsWith("--")) continue
    const name = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg
    const takesValue = found.flags.get(name)
    if (takesValue === undefined) {
      // A name as typed, unless it has what a terminal would not show plainly: then quoted and escaped.
      const field = /^--[\w.-]{1,60}$/.test(name) ? name : shown(name, 40)
      return Option.some(new UsageError({ field, reason: `unknown option for ${["swarm", ...found.words].join(" ")}` }))
    }
    if (takesValue && !arg.includes("=")) i++
  }
  return Option.none()
}
