/**
 * `swarm chat ask | follow | history | suggestions | apply`: the system agent's chat about a run on a
 * server (schemas/Rpc.ts `ChatRpcs`). `ask` prints the answer as it streams — its text on stdout, so
 * it pipes clean, and a line per tool the agent ran on stderr — and, cut off mid-answer, reads on
 * from where it stopped (`chat.follow`); `follow` prints the run's chat as it goes, whoever asks; the
 * rest show the run's chat, the rules it suggests from the run's losing trades, and apply one (a new
 * version of the run's strategy).
 */
import { Args, Command, Options } from "@effect/cli"
import { Duration, Effect, Either, Option, Stream } from "effect"
import { type ChatChunk, type ChatFollowed, ChatHistory, MAX_QUESTION_LENGTH, positionOf, RuleSuggestions } from "../../schemas/Chat.js"
import * as ChatView from "./ChatView.js"
import * as CommandLine from "./CommandLine.js"
import { RemoteFailed, UsageError } from "./CliError.js"
import { checked, count, json, toJson } from "./Flags.js"
import { type Io, visible } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RemoteRuns from "./RemoteRuns.js"
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

// ---------------------------------------------------------------------------------------------
// Reading on after a cut-off

/**
 * How many times in a row a stream cut off may bring nothing before `chat ask` or `chat follow`
 * gives up (as `runs events` does, RunEventsCommand.ts).
 */
const CUT_TRIES = 3

/** A first stream that stayed open this long was connected: failing after it, it is cut off, as `runs watch` takes it (RemoteRuns.ts). */
const CONNECTED = Duration.seconds(10)

/** A stream cut off: why, and whether the server cut it because this client read too slowly (the server is up: no wait). */
interface Cut {
  readonly reason: string
  readonly behind: boolean
  readonly error: Remote.ServerError
}

/**
 * A failure that reading on may get past: the server ended the stream (it could not go on, or this
 * client read too slowly: `Unavailable`), or the connection broke (`RpcClientError`).
 */
const cutOf = (server: string, error: Remote.ServerError): Cut | undefined =>
  error._tag === "Unavailable"
    ? { reason: error.reason, behind: error.behind === true, error }
    : error._tag === "RpcClientError"
    ? { reason: Remote.transportReason(server, error.cause ?? error), behind: false, error }
    : undefined

/** The line of a cut-off, said on stderr as the stream reads on. */
const cutLine = (server: string, cut: Pick<Cut, "reason" | "behind">): string =>
  cut.behind
    ? `${server} cut off this stream: this client read it more slowly than it came (${cut.reason})`
    : `the stream from ${server} was cut off (${cut.reason})`

/**
 * Read `first`, and after a cut-off read on with `chat.follow` after the last chunk had (`again`:
 * that stream), no chunk missed and none twice, each item to `each`, until a stream ends (`done`
 * says whether that is the end, else it is a cut-off too). Cut off `CUT_TRIES` times in a row with
 * nothing read in between, it gives up saying how to read on (`goOn`); cut off before any chunk
 * (nothing to read on after), or failing otherwise, it fails as the stream did.
 */
const readOn = (
  remote: Remote.Remote,
  options: {
    readonly first: Stream.Stream<ChatFollowed, Remote.ServerError>
    readonly after: string | undefined
    /** The stream that reads on after a chunk (none yet: from now on, when `fromNow`). */
    readonly again: (after: string | undefined) => Stream.Stream<ChatFollowed, Remote.ServerError>
    /** Cut off before any chunk, whether to follow again from now (`chat follow`), or fail as the stream did (`chat ask`). */
    readonly fromNow: boolean
    readonly each: (item: ChatFollowed) => void
    readonly done: () => boolean
    readonly note: (line: string) => void
    readonly goOn: (after: string | undefined) => string
  }
) =>
  Effect.gen(function*() {
    const server = remote.target.server
    let after = options.after
    const once = (stream: Stream.Stream<ChatFollowed, Remote.ServerError>) =>
      stream.pipe(
        Stream.map(Either.right),
        Stream.catchAll((error) => {
          const cut = cutOf(server, error)
          return cut === undefined ? Stream.fail(error) : Stream.succeed(Either.left(cut))
        }),
        remote.follow("run"),
        Stream.runFold(undefined as Cut | undefined, (_, item) => {
          if (Either.isLeft(item)) return item.left
          options.each(item.right)
          if (item.right._tag !== "Missed") after = positionOf(item.right)
          return undefined
        })
      )
    let stream = options.first
    for (let fruitless = 0, tries = 0;; tries++) {
      const from = after
      const [took, ended] = yield* Effect.timed(once(stream))
      if (options.done()) return
      const cut = ended ?? { reason: "it ended before the answer did", behind: false, error: undefined }
      // The first stream failing at once with nothing read is no cut-off (the server cannot be
      // reached, or refused); before the first chunk of an answer asked, nothing says where to read on from.
      const refused = tries === 0 && after === options.after && Duration.lessThan(took, CONNECTED)
      if (refused || (after === undefined && !options.fromNow)) {
        return yield* (cut.error === undefined
          ? new RemoteFailed({ field: "server", reason: `${server} ended the stream: ${cut.reason}`, unavailable: true })
          : Remote.translate(remote.target, "run")(cut.error))
      }
      fruitless = after !== from ? 0 : fruitless + 1
      const line = cutLine(server, cut)
      if (fruitless >= CUT_TRIES) {
        return yield* new RemoteFailed({
          field: "server",
          reason: `${line}, ${CUT_TRIES} times with nothing read in between: ${options.goOn(after)}`,
          unavailable: true
        })
      }
      options.note(`${line}; ${after === undefined ? "following it again" : `reading on after chunk ${after}`}…\n`)
      // A server that went away is given a moment to come back; one that cut a slow reader off is up.
      if (!cut.behind) yield* Effect.sleep(RemoteRuns.reconnectDelay(fruitless))
      stream = options.again(after)
    }
  })

/**
 * `chat ask` on a server: `question` asked about `run`, its answer printed as it streams (`json`:
 * each chunk as the contract encodes it). Cut off mid-answer — the connection dropped, or the
 * server cut off this client for reading too slowly — it reads on after the last chunk printed
 * (`chat.follow`), every token printed once; it gives up after `CUT_TRIES` fruitless tries, saying
 * how to read on. An answer that broke off is `RemoteFailed` (exit 1), naming where it is recorded.
 */
export const askRemote = (io: Io, remote: Remote.Remote, run: string, question: string, json: boolean) =>
  Effect.gen(function*() {
    const printer = ChatView.answerPrinter(io.stdout, io.stderr)
    /** The question's message number, once its `Asked` came: the answer read on is that one's. */
    let asked: number | undefined
    let ended: ChatChunk | undefined
    let missed: string | undefined
    yield* readOn(remote, {
      first: remote.client.chat.send({ run, message: question }),
      after: undefined,
      again: (after) =>
        remote.client.chat.follow(after === undefined ? { run } : { run, after }).pipe(
          Stream.takeUntil((item) => item._tag === "Missed" || ((item._tag === "Done" || item._tag === "Failed") && item.question === asked))
        ),
      fromNow: false,
      each: (item) => {
        if (item._tag === "Missed") {
          missed = item.reason
          return
        }
        if (item._tag === "Asked") asked = item.question
        if (item.question !== asked) return
        if (json) io.stdout(ChatView.chunkLine(item))
        else if (item._tag === "Token") printer.token(item.text)
        else if (item._tag === "ToolUsed") printer.tool(item)
        if (item._tag === "Done" || item._tag === "Failed") ended = item
      },
      done: () => ended !== undefined || missed !== undefined,
      note: (line) => (json ? io.stderr(line) : printer.note(line)),
      goOn: (after) =>
        `${CommandLine.line(["swarm", "chat", "follow", run, "--after", after ?? ""])} reads on from there, until Ctrl-C (swarm chat history ${run} has the answer once it is done)`
    }).pipe(
      // The answer's last line is closed however it ends: done, failed, cut off, or Ctrl-C.
      Effect.ensuring(Effect.sync(() => printer.end()))
    )
    if (missed !== undefined) {
      return yield* new RemoteFailed({
        field: "answer",
        reason: `could not be read on after a cut-off: ${missed.replace("chat.history", `swarm chat history ${run}`)}`,
        unavailable: true
      })
    }
    if (ended?._tag !== "Failed") return
    return yield* new RemoteFailed({
      field: "answer",
      reason: `broke off: ${ended.reason} (${
        ended.message === null ? "not recorded" : `recorded as message ${ended.message}: swarm chat history ${run} shows it`
      })`
    })
  })

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
      yield* Remote.withRemote(flags, wiring)((remote) => askRemote(io, remote, run, question, flags.json))
    }).pipe(Effect.withSpan("swarm.chat.ask"))).pipe(
    Command.withDescription(
      "Ask the system agent about a run: the answer's text on stdout as it streams, a line per tool it ran on stderr " +
        "(so `> answer.txt` keeps only the answer); cut off mid-answer, it reads on from where it stopped. " +
        "Exit 0 once answered, 1 if the answer broke off."
    )
  )

/**
 * `chat follow` on a server: the run's chat as it goes (`chat.follow`), after `after` if given —
 * each question on a line of its own, each answer's text as it streams on stdout, tools and what
 * could not be had on stderr (`json`: every item as the contract encodes it, one a line) — until
 * Ctrl-C. Cut off, it reads on after the last chunk printed, as `chat ask` does.
 */
export const followRemote = (io: Io, remote: Remote.Remote, run: string, options: { readonly after: string | undefined; readonly json: boolean }) =>
  Effect.gen(function*() {
    const printer = ChatView.answerPrinter(io.stdout, io.stderr)
    yield* readOn(remote, {
      first: remote.client.chat.follow(options.after === undefined ? { run } : { run, after: options.after }),
      after: options.after,
      // Cut off before any chunk, it follows again from now: it had nothing to read on after.
      again: (after) => remote.client.chat.follow(after === undefined ? { run } : { run, after }),
      fromNow: true,
      each: (item) => {
        if (options.json) return io.stdout(ChatView.followedLine(item))
        switch (item._tag) {
          case "Missed":
            return printer.note(`${visible(item.reason.replace("chat.history", `swarm chat history ${run}`))}\n`)
          case "Asked":
            printer.end()
            return io.stdout(visible(`#${item.question} asked: ${item.content}`) + "\n")
          case "Token":
            return printer.token(item.text)
          case "ToolUsed":
            return printer.tool(item)
          case "Done":
            return printer.end()
          case "Failed":
            printer.end()
            return printer.note(visible(`(broke off: ${item.reason})`) + "\n")
        }
      },
      // It follows until Ctrl-C: a stream that ends was cut off.
      done: () => false,
      note: (line) => (options.json ? io.stderr(line) : printer.note(line)),
      goOn: (after) => `${CommandLine.line(["swarm", "chat", "follow", run, ...(after === undefined ? [] : ["--after", after])])} ${after === undefined ? "follows it again" : "reads on from there"}`
    }).pipe(Effect.ensuring(Effect.sync(() => printer.end())))
  })

/** `--after <question>.<index>`: a chunk's position, as `chat follow --json` and the chunks say it. */
const afterOption = Options.text("after").pipe(
  Options.withPseudoName("question.index"),
  Options.optional,
  Options.mapEffect(checked("--after", (text: string) =>
    /^[1-9]\d{0,9}\.\d{1,10}$/.test(text)
      ? Either.right(text)
      : Either.left(`expected a chunk's position, <question>.<index> (as chat follow --json and chat ask --json show them: 5.12), got ${RunRef.shown(text, 24)}`))),
  Options.withDescription("Read on after this chunk (<question>.<index>, as the chunks say it): the rest of its answer and every answer since, as the server still holds them.")
)

export const follow = (io: Io, wiring: Wiring) =>
  Command.make("follow", {
    run: runArg,
    after: afterOption,
    json: json("Print each item as the JSON line the contract encodes (Asked, Token, ToolUsed, Done, Failed, Missed), one per line."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const run = yield* RunRef.check("<run>", flags.run)
      yield* Remote.withRemote(flags, wiring)((remote) => followRemote(io, remote, run, { after: Option.getOrUndefined(flags.after), json: flags.json }))
    }).pipe(Effect.withSpan("swarm.chat.follow"))).pipe(
    Command.withDescription(
      "Follow a run's chat with the system agent as it goes, whoever asks: each question, each answer as it streams, until Ctrl-C; " +
        "--after reads on from a chunk (an answer cut off: chat ask says where)."
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
export const SUBCOMMANDS = ["ask", "follow", "history", "suggestions", "apply"]

export const command = (io: Io, wiring: Wiring) =>
  Command.make("chat").pipe(
    Command.withDescription("Chat with the system agent about a run on a server: ask, follow, history, suggestions, apply."),
    Command.withSubcommands([ask(io, wiring), follow(io, wiring), history(io, wiring), suggestions(io, wiring), apply(io, wiring)])
  )
