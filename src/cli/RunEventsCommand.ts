/**
 * `swarm runs events <run> [--since n] [--type T]... [--json] [--local]`: a run's events as it
 * recorded them — its reasoning, opinions, decisions, verdicts, fills — read from the local
 * database, or from a server when one is configured (`runs.events`, as `runs watch --json` reads
 * them). `--json` prints each event's stored JSON line (ndjson), byte for byte; otherwise one
 * readable line each. A stored run's events end where it did; a run still going is followed until
 * it ends, as `runs watch` does — and, as it does, a stream the server cut off because this client
 * read it too slowly goes on from the last event printed.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Either, Option, Schema, Stream } from "effect"
import type { Timestamp } from "../../schemas/Ids.js"
import type { LifecycleEvent } from "../../schemas/Lifecycle.js"
import type { LlmCall } from "../../schemas/Llm.js"
import type { Unavailable } from "../../schemas/Rpc.js"
import { RunEvent, type RunEventTag } from "../../schemas/RunEvent.js"
import * as Runs from "../store/Runs.js"
import { RemoteFailed } from "./CliError.js"
import { invalid, json, since } from "./Flags.js"
import { type Io, visible } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RunRef from "./RunRef.js"
import { local, onServer, serverFor } from "./RunsCommand.js"
import { count, money, quantity, roundText, time } from "./Summary.js"
import * as Watch from "./Watch.js"
import * as Wiring from "./Wiring.js"

/** How many times in a row a stream cut off for falling behind may bring no event before `runs events` gives up. */
const BEHIND_TRIES = 3

/** Every event type a run records (schemas/RunEvent.ts): what `--type` takes. */
export const TYPES: ReadonlyArray<string> = Object.keys(
  // Every tag of the union, and no other: the compiler holds this to schemas/RunEvent.ts.
  {
  RunStarted: true,
  SignalReceived: true,
  SignalNotApplied: true,
  TradingStateRequested: true,
  OpinionGiven: true,
  DecisionMade: true,
  VerdictGiven: true,
  ApprovalRequested: true,
  ApprovalResolved: true,
  OrderPlaced: true,
  OrderCancelled: true,
  ExecutionBlocked: true,
  OrderFilled: true,
  TradeClosed: true,
  PortfolioUpdated: true,
  TradingStateChanged: true,
  AgentLifecycle: true,
  DeadLetterRecorded: true,
  LlmCalled: true,
  ReasoningRecorded: true,
  LlmBudgetSpent: true,
  RunCompleted: true,
  RunFailed: true,
} satisfies Record<RunEventTag, true>
)

/** Events read from the database at a time. */
const PAGE = 5_000

const decodeEvent = Schema.decodeUnknownOption(RunEvent)

/** Whitespace (a model's paragraphs) folded to single spaces: one line an event. */
const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim()

/** The line of an event `runs watch` says nothing of (it only feeds its view), or one this build does not know. */
const quietText = (event: RunEvent): string => {
  switch (event._tag) {
    case "OpinionGiven": {
      const o = event.opinion
      return `opinion ${o.agent} ${o.symbol} ${o.direction} (confidence ${o.confidence.toFixed(2)}), round ${roundText(o.round)}: ${oneLine(o.rationale)}`
    }
    case "ReasoningRecorded":
      return `reasoning ${event.agent} (${event.role}) ${event.kind}, round ${roundText(event.round)}: ${oneLine(event.text)}`
    case "PortfolioUpdated":
      return `portfolio equity ${money(event.snapshot.equity)}, cash ${money(event.snapshot.cash)}`
    case "LlmBudgetSpent":
      return `LLM budget spent: ${event.agent}${event.round === undefined ? "" : `, round ${roundText(event.round)}`}: ${event.reason}`
    case "OrderPlaced": {
      const o = event.order
      return `order placed ${o.symbol} ${o.side} ${quantity(o.quantity)} (${o.type}, fills at the ${o.fillTiming === "next_open" ? "next open" : "same close"}), round ${
        roundText(o.round)
      }`
    }
    case "LlmCalled":
      return llmCallText(event.call)
    case "AgentLifecycle":
      return lifecycleText(event.event)
    default:
      // Any other event has a line of `runs watch`'s (Watch.line); one it leaves out is named.
      return event._tag
  }
}

/** A starting or stopping agent (the lines of crashes, restarts and escalations are `runs watch`'s). */
const lifecycleText = (event: LifecycleEvent): string =>
  event._tag === "ActorStarted"
    ? `agent ${event.actor} started`
    : event._tag === "ActorStopped"
    ? `agent ${event.actor} stopped${event.reason === "stopped" ? "" : ` (${event.reason})`}`
    : event._tag

/** One model call: who asked, which model answered how, from the cache or not, its tokens and time. */
const llmCallText = (call: LlmCall): string => {
  const how = call.outcome === "ok" ? "answered" : call.outcome === "budget" ? "refused (budget spent)" : `${call.outcome}`
  const cache = call.cache === "hit" ? ", from the cache" : ""
  const cost = call.cost === undefined || call.cost === 0 ? "" : `, cost ${call.cost}`
  return `LLM call ${call.agent} ${call.step}${call.round === undefined ? "" : `, round ${roundText(call.round)}`}: ${call.backend} ${call.model} ${how}${cache}, ` +
    `tokens ${count(call.tokensIn)} in, ${count(call.tokensOut)} out${cost}, ${count(call.latencyMillis)} ms${call.error === undefined ? "" : `: ${oneLine(call.error)}`}`
}

/**
 * One readable line of a stored event: `#seq time what`, as `runs watch` prints them piped.
 * `strategy`: the name of the run's strategy, which its RunStarted line names (without it: its id).
 */
export const eventLine = (seq: number, tag: string, body: string, strategy?: string): string => {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return visible(`#${seq} ${tag}`)
  }
  const event = decodeEvent(parsed)
  if (Option.isNone(event)) return visible(`#${seq} ${tag} (an event this swarm does not read: --json prints it)`)
  return Watch.line(event.value, { strategy }) ?? visible(`#${seq} ${time(event.value.at as Timestamp)} ${quietText(event.value)}`)
}

const runArg = Args.text({ name: "run" }).pipe(Args.withDescription("The run: its id (run_…) or <strategy>#<number>, as `swarm runs list` shows it."))

const options = {
  since: since("n", "Only the events after this event number (default 0: from the first)."),
  types: Options.text("type").pipe(
    Options.withPseudoName("T"),
    Options.repeated,
    Options.mapEffect((types) => {
      const unknown = types.find((type) => !TYPES.includes(type))
      return unknown === undefined
        ? Effect.succeed(types)
        : Effect.fail(invalid("--type", `expected an event type (${TYPES.join(", ")}), got ${RunRef.shown(unknown)}`))
    }),
    Options.withDescription("Only events of this type (ReasoningRecorded, DecisionMade…); give it again for more.")
  ),
  json: json("Print each event as the JSON line the run recorded, one per line (ndjson), instead of a readable line.")
}

/** What `runs events` prints: the events after `since`, of `types` (none: all), readable or `json`. */
interface EventsOptions {
  readonly since: number
  readonly types: ReadonlyArray<string>
  readonly json: boolean
}

/** Prints an event as `options` say, if it is of their types: its stored line (`json`), or a readable one. */
const printer = (io: Io, options: EventsOptions) => {
  const wanted = options.types.length === 0 ? undefined : new Set(options.types)
  return (seq: number, tag: string, body: string, strategy: string | undefined) => {
    if (wanted === undefined || wanted.has(tag)) io.stdout(options.json ? `${body}\n` : `${eventLine(seq, tag, body, strategy)}\n`)
  }
}

/**
 * `runs events` on a server: the run's events after `options.since` (of `options.types`, picked on
 * the server), each given to `print` with the strategy's name for a readable RunStarted line; a run
 * still going followed until it ends.
 */
export const remoteEvents = (io: Io, remote: Remote.Remote, ref: string, options: EventsOptions) =>
  Effect.gen(function*() {
    const print = printer(io, options)
    const wanted = options.types.length === 0 ? undefined : new Set(options.types)
    // The strategy's name, for the RunStarted line: asked once, when that line is printed (a run's
    // first event); a server that does not say it leaves the line naming the strategy's id.
    const strategy = yield* Effect.cached(
      remote.client.runs.get({ run: ref }).pipe(remote.call("run"), Effect.map((info) => info.strategy), Effect.orElseSucceed(() => undefined))
    )
    // The types picked on the server: the rest of the run never goes over the wire. A server
    // from before `types` refuses the field: it sends the whole run, picked here (`print`).
    const eventsAfter = (after: number) => {
      const all = remote.client.runs.events({ run: ref, since: after })
      return options.types.length === 0 ? all : remote.client.runs.events({ run: ref, since: after, types: options.types }).pipe(
        Stream.catchSome((error) => error._tag === "InvalidRequest" && error.field === "types" ? Option.some(all) : Option.none())
      )
    }
    /** The last event printed (or passed over), where a stream cut off goes on from. */
    let last = options.since
    /** One stream of the run's events after `after`: the server's `Unavailable { behind }` if it cut this client off. */
    const printAfter = (after: number) =>
      eventsAfter(after).pipe(
        Stream.map(Either.right),
        Stream.catchAll((error) => error._tag === "Unavailable" && error.behind === true ? Stream.succeed(Either.left(error)) : Stream.fail(error)),
        remote.follow("run"),
        Stream.runFoldEffect(undefined as Unavailable | undefined, (_, item) =>
          Either.isLeft(item)
            ? Effect.succeed(item.left)
            : Effect.map(
              item.right.tag === "RunStarted" && !options.json && (wanted === undefined || wanted.has(item.right.tag)) ? strategy : Effect.succeed(undefined),
              (name) => {
                print(item.right.seq, item.right.tag, item.right.json, name)
                last = item.right.seq
                return undefined
              }
            ))
      )
    // A reader slower than the run (a slow pipe, a slow link) is cut off by the server, which is
    // up: the events go on from the last one printed, no gap and no duplicate, as `runs watch`
    // does. Cut off again and again with nothing printed in between, it gives up saying how to go on.
    for (let fruitless = 0;;) {
      const from = last
      const behind = yield* printAfter(from)
      if (behind === undefined) return
      fruitless = last > from ? 0 : fruitless + 1
      const server = remote.target.server
      if (fruitless >= BEHIND_TRIES) {
        return yield* new RemoteFailed({
          field: "server",
          reason: `fell behind run ${ref} on ${server} ${BEHIND_TRIES} times with no event read in between (${behind.reason}): ` +
            `swarm runs events ${ref} --since ${last} goes on from event #${last}`,
          unavailable: true
        })
      }
      io.stderr(`fell behind run ${ref} on ${server} (${behind.reason}); going on from event #${last}…\n`)
    }
  })

export const command = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("events", { run: runArg, ...options, ...Remote.options, local }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* RunRef.check("<run>", flags.run)
      const since = Option.getOrElse(flags.since, () => 0)
      const chosen: EventsOptions = { since, types: flags.types, json: flags.json }
      const server = yield* serverFor(flags, wiring)
      if (Option.isSome(server)) return yield* onServer(server.value, (remote) => remoteEvents(io, remote, ref, chosen))
      const print = printer(io, chosen)
      yield* Wiring.withStore(io, wiring)(Effect.gen(function*() {
        const run = yield* Runs.getSummary(ref)
        let after = since
        for (;;) {
          const page = yield* Runs.events(run.id, after, PAGE, flags.types.length === 0 ? undefined : flags.types)
          for (const e of page) print(Number(e.seq), e.tag, e.body, run.strategyName)
          if (page.length < PAGE) break
          after = Number(page[page.length - 1]!.seq)
        }
      }))
    }).pipe(Effect.withSpan("swarm.runs.events"))).pipe(
    Command.withDescription(
      "Print a run's recorded events — reasoning, opinions, decisions, verdicts, fills — one readable line each, or as ndjson (--json); from the server when one is configured, else the local database."
    )
  )
