/**
 * `swarm chat ask | history | suggestions | apply`: the system agent's chat about a run on a server
 * (schemas/Rpc.ts `ChatRpcs`). `ask` prints the answer as it streams — its text on stdout, so it
 * pipes clean, and a line per tool the agent ran on stderr; the rest show the run's chat, the rules
 * it suggests from the run's losing trades, and apply one (a new version of the run's strategy).
 */
import { Args, Command } from "@effect/cli"
import { Effect, Option, Stream } from "effect"
import { ChatHistory, MAX_QUESTION_LENGTH, RuleSuggestions } from "../../schemas/Chat.js"
import * as ChatView from "./ChatView.js"
import * as CommandLine from "./CommandLine.js"
import { RemoteFailed, UsageError } from "./CliError.js"
import { count, json, toJson } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RemoteView from "./RemoteView.js"
import * as RunRef from "./RunRef.js"
import type { Wiring } from "./Wiring.js"

const runArg = Args.text({ name: "run" }).pipe(Args.withDescription("The run: its id (run_…) or <strategy>#<number>."))

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/

/**
 * Why the server would refuse `text` as a question (schemas/Chat.ts `ChatQuestion`), said before
 * the call: the server's refusal would name its payload's field, not the argument.
 */
export const questionProblem = (text: string): string | undefined =>
  text.trim() === ""
    ? "is empty: ask something about the run"
    : text.length > MAX_QUESTION_LENGTH
    ? `is ${text.length.toLocaleString("en-US")} characters long: at most ${MAX_QUESTION_LENGTH.toLocaleString("en-US")}`
    : CONTROL.test(text)
    ? "contains control characters (tabs and line breaks are fine)"
    : undefined

/** A suggestion id as the contract takes it (1 to 200 characters); control characters cannot be one. */
const suggestionRef = (text: string) => {
  const reason = text.trim() === ""
    ? "is empty: give the id swarm chat suggestions shows"
    : text.length > 200 || CONTROL.test(text) || text.includes("\n")
    ? `${RunRef.shown(text, 24)} cannot be a suggestion id (at most 200 characters, no control characters)`
    : undefined
  return reason === undefined ? Effect.succeed(text) : Effect.fail(new UsageError({ field: "<suggestion>", reason }))
}

/**
 * The question: the argument, or with `-` what is piped into stdin (a long question, or one kept in
 * a file), without the line break that ends a file. `-` with stdin a terminal is refused rather
 * than waited on.
 */
const questionOf = (io: Io, argument: string): Effect.Effect<string, UsageError> => {
  if (argument !== "-") return Effect.succeed(argument)
  if (io.input === undefined) {
    return Effect.fail(
      new UsageError({ field: "<question>", reason: "- reads the question from stdin, which is a terminal here: pipe it in (swarm chat ask RUN - < question.txt) or give it as the argument" })
    )
  }
  // Read to one character past the longest question with its line break: enough to tell it is too long.
  return Effect.flatMap(io.input(MAX_QUESTION_LENGTH + 2), (text) =>
    text.length > MAX_QUESTION_LENGTH + 2
      ? Effect.fail(
        new UsageError({
          field: "<question> (stdin)",
          reason: `is more than ${MAX_QUESTION_LENGTH.toLocaleString("en-US")} characters long: at most ${MAX_QUESTION_LENGTH.toLocaleString("en-US")}`
        })
      )
      : Effect.succeed(text.replace(/\r?\n$/, "")))
}

export const ask = (io: Io, wiring: Wiring) =>
  Command.make("ask", {
    run: runArg,
    question: Args.text({ name: "question" }).pipe(
      Args.withDescription(
        `What to ask about the run (1 to ${MAX_QUESTION_LENGTH.toLocaleString("en-US")} characters; quote it), or - to read it from stdin (swarm chat ask RUN - < question.txt).`
      )
    ),
    json: json("Print each chunk of the answer as the JSON line the contract encodes (Asked, Token, ToolUsed, Done, Failed), one per line."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const run = yield* RunRef.check("<run>", flags.run)
      const question = yield* questionOf(io, flags.question)
      const problem = questionProblem(question)
      if (problem !== undefined) return yield* new UsageError({ field: flags.question === "-" ? "<question> (stdin)" : "<question>", reason: problem })
      yield* Remote.withRemote(flags, wiring)((remote) => {
        const printer = ChatView.answerPrinter(io.stdout, io.stderr)
        return remote.client.chat.send({ run, message: question }).pipe(
          remote.follow("run"),
          Stream.runFoldEffect(undefined as RemoteFailed | undefined, (failed, chunk) =>
            Effect.sync(() => {
              if (flags.json) io.stdout(ChatView.chunkLine(chunk))
              else if (chunk._tag === "Token") printer.token(chunk.text)
              else if (chunk._tag === "ToolUsed") printer.tool(chunk)
              if (chunk._tag !== "Failed") return failed
              return new RemoteFailed({
                field: "answer",
                reason: `broke off: ${chunk.reason} (${
                  chunk.message === null ? "not recorded" : `recorded as message ${chunk.message}: swarm chat history ${run} shows it`
                })`
              })
            })),
          // The answer's last line is closed however it ends: done, failed, cut off, or Ctrl-C.
          Effect.ensuring(Effect.sync(() => printer.end())),
          Effect.flatMap((failed) => (failed === undefined ? Effect.void : Effect.fail(failed)))
        )
      })
    }).pipe(Effect.withSpan("swarm.chat.ask"))).pipe(
    Command.withDescription(
      "Ask the system agent about a run: the answer's text on stdout as it streams, a line per tool it ran on stderr " +
        "(so `> answer.txt` keeps only the answer). Exit 0 once answered, 1 if the answer broke off."
    )
  )

export const history = (io: Io, wiring: Wiring) =>
  Command.make("history", {
    run: runArg,
    limit: count("limit", 1_000, "How many of the latest messages (default 200, at most 1000)."),
    before: count(
      "before",
      Number.MAX_SAFE_INTEGER,
      "The page before: only the messages numbered below this one (the text ends with the command for the earlier page)."
    ),
    json: json("Print the chat as one JSON document (the messages whole, tool results too; the earlier page: --before the first's seq)."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const run = yield* RunRef.check("<run>", flags.run)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const limit = Option.getOrUndefined(flags.limit)
          const before = Option.getOrUndefined(flags.before)
          const answer = yield* remote.client.chat.history({
            run,
            ...(limit === undefined ? {} : { limit }),
            ...(before === undefined ? {} : { before })
          }).pipe(remote.call("run"))
          io.stdout(flags.json ? toJson(ChatHistory, answer) : ChatView.historyText(answer, earlierPage({ ...flags, run })))
        })
      )
    }).pipe(Effect.withSpan("swarm.chat.history"))).pipe(
    Command.withDescription(
      "Print a run's chat with the system agent, oldest first: questions, answers, the tools it ran; --before pages back through a long one."
    )
  )

/**
 * The command line of the page before the one whose first message is `first`: this one's run,
 * limit and server, with `--before`. `--key` is never printed (a secret).
 */
const earlierPage = (flags: { readonly run: string; readonly limit: Option.Option<number>; readonly server: Option.Option<string> }) =>
(first: number): string =>
  CommandLine.line([
    "swarm",
    "chat",
    "history",
    flags.run,
    ...Option.match(flags.limit, { onNone: () => [], onSome: (n) => ["--limit", String(n)] }),
    ...Option.match(flags.server, { onNone: () => [], onSome: (server) => ["--server", server] }),
    "--before",
    String(first)
  ])

export const suggestions = (io: Io, wiring: Wiring) =>
  Command.make("suggestions", {
    run: runArg,
    minTrades: count("min-trades", 1_000, "How many trades a losing pattern needs to give a rule (default: the server's, 5)."),
    json: json("Print the suggestions as one JSON document (each rule whole, with its evidence)."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const run = yield* RunRef.check("<run>", flags.run)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const minTrades = Option.getOrUndefined(flags.minTrades)
          const answer = yield* remote.client.chat.suggestions(minTrades === undefined ? { run } : { run, minTrades }).pipe(remote.call("run", "find the run's losing patterns"))
          io.stdout(flags.json ? toJson(RuleSuggestions, answer) : ChatView.suggestionsText(answer))
        })
      )
    }).pipe(Effect.withSpan("swarm.chat.suggestions"))).pipe(
    Command.withDescription("List the rules that would have kept a run out of its losing patterns, each with the id `swarm chat apply` takes.")
  )

export const apply = (io: Io, wiring: Wiring) =>
  Command.make("apply", {
    run: runArg,
    suggestion: Args.text({ name: "suggestion" }).pipe(Args.withDescription("The suggestion's id, as `swarm chat suggestions` shows it.")),
    json: json("Print the strategy's new version as one JSON document."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const run = yield* RunRef.check("<run>", flags.run)
      const suggestion = yield* suggestionRef(flags.suggestion)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const saved = yield* remote.client.chat.applyRule({ run, suggestion }).pipe(remote.call("suggestion", "find the run's losing patterns again"))
          io.stdout(flags.json ? RemoteView.strategyJson(saved) : RemoteView.strategySaved(`added rule ${ChatView.ruleOf(suggestion)} to`, saved))
        })
      )
    }).pipe(Effect.withSpan("swarm.chat.apply"))).pipe(
    Command.withDescription("Add a suggested rule to the run's strategy: a new version, which the strategy's next run uses.")
  )

/** The subcommands, for the help line of a parse error. */
export const SUBCOMMANDS = ["ask", "history", "suggestions", "apply"]

export const command = (io: Io, wiring: Wiring) =>
  Command.make("chat").pipe(
    Command.withDescription("Chat with the system agent about a run on a server: ask, history, suggestions, apply."),
    Command.withSubcommands([ask(io, wiring), history(io, wiring), suggestions(io, wiring), apply(io, wiring)])
  )
