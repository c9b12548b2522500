/**
 * The runs of a server, for `swarm runs …`: list, show and compare (what RunsCommand does on the
 * local database, asked of the server instead when one is configured), and what only a server can
 * do — start a backtest or a paper run, stop, pause and resume it, and watch it live. `watch`
 * folds the run's event stream into Watch's view: redrawn in place on a terminal, one line per
 * meaningful event otherwise; it ends when the run does.
 */
import { Args, Command, Options } from "@effect/cli"
import { Clock, Duration, Effect, Either, Option, Ref, Schedule, Schema, Stream } from "effect"
import {
  type ControlHistory,
  type InvalidRequest,
  type RunData,
  type RunInfo,
  type RunNotFound,
  type RunStatus,
  type RunStatusNote,
  type StreamedEvent,
  TradingChange
} from "../../schemas/Rpc.js"
import { RunEvent } from "../../schemas/RunEvent.js"
import { RemoteFailed, RunFailed, UsageError } from "./CliError.js"
import { checked, choice, json, since, toJson } from "./Flags.js"
import { type Io, visible } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RemoteView from "./RemoteView.js"
import * as RunRef from "./RunRef.js"
import * as RunsView from "./RunsView.js"
import { time } from "./Summary.js"
import { strategyArg, strategyRef, versionOption } from "./StrategiesCommand.js"
import * as Watch from "./Watch.js"
import type { Wiring } from "./Wiring.js"

/** The server's largest page (schemas/Rpc.ts `Limit`). */
const SERVER_LIMIT = 1_000

export const list = (io: Io, remote: Remote.Remote, query: {
  readonly strategy: string | undefined
  readonly status: typeof RunStatus.Type | undefined
  readonly limit: number
  /** A run: only the runs listed after it. */
  readonly before: string | undefined
  readonly json: boolean
  /** The command line of the page after the run `last`, said when more runs follow. */
  readonly next: (last: string) => string
}) =>
  Effect.gen(function*() {
    const filters = {
      ...(query.strategy === undefined ? {} : { strategy: query.strategy }),
      ...(query.status === undefined ? {} : { status: query.status })
    }
    const page = (before: string | undefined, limit: number) =>
      remote.client.runs.list({ ...filters, ...(before === undefined ? {} : { before }), limit }).pipe(
        // Refusals of the cursor, kept from `call`'s generic lines: said of the flag.
        Effect.map(Either.right),
        Effect.catchIf(
          (error): error is RunNotFound | InvalidRequest => (error._tag === "RunNotFound" || error._tag === "InvalidRequest") && error.field === "before",
          (error) => Effect.succeed(Either.left(error))
        ),
        remote.call("run"),
        Effect.flatMap((answer) => Either.isRight(answer) ? Effect.succeed(answer.right) : Effect.fail(cursorRefused(remote.target.server, answer.left)))
      )
    // One more than asked, to say whether there are more; at the server's largest page, the one
    // after the last asked for on its own.
    const runs = yield* page(query.before, Math.min(query.limit + 1, SERVER_LIMIT))
    const shown = runs.slice(0, query.limit)
    const last = shown[shown.length - 1]
    const more = runs.length > query.limit ||
      (!query.json && last !== undefined && runs.length === SERVER_LIMIT && (yield* page(last.id, 1)).length > 0)
    io.stdout(query.json ? RemoteView.runsJson(shown) : RemoteView.runsTable(shown, more && last !== undefined ? query.next(last.id) : undefined))
  })

/**
 * A refused `--before`: no run of the key's user (a run of someone else's is answered alike), or —
 * a well-formed reference is only ever refused so by a server that does not take the field — a
 * server older than the flag.
 */
const cursorRefused = (server: string, error: RunNotFound | InvalidRequest): UsageError | RemoteFailed =>
  error._tag === "InvalidRequest"
    ? new RemoteFailed({ field: "server", reason: `${server} does not page runs (--before: ${error.reason}): it is older than this command` })
    : new UsageError({
      field: "--before",
      reason: error.ambiguous === undefined
        ? `no run ${RunRef.shown(error.run)} on ${server} (swarm runs list shows yours)`
        : `${RunRef.shown(error.run)} names ${error.ambiguous.length} runs on ${server} (${error.ambiguous.join(", ")}): give the run's id`
    })

/**
 * `runs show`: the report the local database gives (RunsView), from the server's `runs.report`. A
 * server from before that procedure says what `runs.get` does (its status, metrics, checksum and
 * who controlled it), as it did then.
 */
export const show = (io: Io, remote: Remote.Remote, run: string, asJson: boolean) =>
  Effect.gen(function*() {
    const report = yield* remote.client.runs.report({ run }).pipe(Remote.ifServed, remote.call("run", "report on the whole run"))
    if (Option.isSome(report)) {
      const shown = RunsView.shownOf(report.value)
      return io.stdout(asJson ? RunsView.showJson(shown) : RunsView.renderShow(shown))
    }
    const info = yield* remote.client.runs.get({ run }).pipe(remote.call("run"))
    io.stdout(asJson ? RemoteView.runJson(info) : RemoteView.runShow(info))
  })

/**
 * `runs compare`: the comparison the local database gives (RunsView) of the server's answer. A
 * server that sends less than it is made of (older than `runs.compare`'s records, event detail and
 * decisions) gets what it said, as before.
 */
export const compare = (io: Io, remote: Remote.Remote, a: string, b: string, asJson: boolean) =>
  Effect.gen(function*() {
    const answer = yield* remote.client.runs.compare({ a, b }).pipe(remote.call("run", "compare the two runs' decisions"))
    const compared = RunsView.comparedOf(answer)
    if (compared !== undefined) return io.stdout(asJson ? RunsView.compareJson(compared) : RunsView.renderCompare(compared))
    io.stdout(asJson ? RemoteView.compareJson(answer) : RemoteView.compareTable(answer))
  })

// ---------------------------------------------------------------------------------------------
// watch

/** How often a terminal view is redrawn at most: often enough to look live, rarely enough to cost nothing. */
const REDRAW = "100 millis"

const decodeEvent = Schema.decodeUnknownOption(RunEvent)

/** An event line as streamed, decoded; an event this client does not know (a newer server) is none. */
const eventOf = (json: string): Option.Option<RunEvent> => {
  try {
    return decodeEvent(JSON.parse(json))
  } catch {
    return Option.none()
  }
}

export interface WatchOptions {
  readonly since: number
  readonly keep: number
  /** Each event's JSON line, as the server recorded it, instead of the view. */
  readonly json: boolean
  /** How long to try to get a lost server back before giving up (default `RECONNECT_FOR`). */
  readonly giveUpAfter?: Duration.Duration
}

/** The view drawn in place on `screen`, at most every REDRAW, until the scope closes (then once more, whole). */
const onScreen = (screen: NodeJS.WriteStream, model: Ref.Ref<Watch.Model>) =>
  Effect.gen(function*() {
    let drawn = 0
    let dirty = true
    const draw = Effect.flatMap(Ref.get(model), (m) =>
      Effect.sync(() => {
        const width = Math.max(40, (screen.columns ?? 100) - 1)
        const height = Math.max(5, (screen.rows ?? 40) - 1)
        const lines = Watch.frame(m, width, height)
        // Back to the first line of the last frame, clear below, draw: no flicker, no scrolling.
        screen.write(`${drawn > 0 ? `\u001b[${drawn}F` : ""}\u001b[J${lines.join("\n")}\n`)
        drawn = lines.length
        dirty = false
      }))
    yield* Effect.acquireRelease(Effect.sync(() => screen.write("\u001b[?25l")), () =>
      Effect.zipRight(draw, Effect.sync(() => screen.write("\u001b[?25h"))))
    yield* Effect.forkScoped(Effect.repeat(Effect.suspend(() => (dirty ? draw : Effect.void)), Schedule.spaced(REDRAW)))
    return Effect.sync(() => {
      dirty = true
    })
  })

/**
 * The cash `info`'s run started with, which its return is measured from: as `runs.get` says it, or
 * (a server from before it did) its strategy version's. Unknown — then, a run of another user's
 * strategy, which only its owner may read, or a server that cannot say now — is none: the view
 * then shows no return until the run's metrics give it, rather than one measured from a later equity.
 */
const initialCashOf = (remote: Remote.Remote, info: RunInfo) =>
  info.initialCash !== undefined
    ? Effect.succeed(info.initialCash)
    : remote.client.strategies.get({ strategy: info.strategy, version: info.strategyVersion }).pipe(
      remote.call("strategy"),
      Effect.map((version) => version.strategy.initialCash),
      Effect.orElseSucceed(() => undefined)
    )

/** How long `watch` tries to get a server that went away back before it gives up. */
export const RECONNECT_FOR = Duration.seconds(60)

/** The wait before the `attempt`th reconnection (0, 1, …): half a second, doubling, at most 5 s. */
export const reconnectDelay = (attempt: number): Duration.Duration => Duration.millis(Math.min(5_000, 500 * 2 ** attempt))

/** A stream that stayed open this long was connected: failing after it starts a new outage. */
const CONNECTED = Duration.seconds(10)

/**
 * How often the run's status is read again while following it (pausing and resuming record no
 * event), when the server does not tell it as it changes (`runs.status`: servers before it), or
 * that stream is lost.
 */
const STATUS_EVERY = "3 seconds"

/** A status note as a control log of one entry, the action that left the run so (`Watch.lastBy` reads it). */
const controlOf = (note: RunStatusNote): ControlHistory | undefined =>
  note.by === undefined || note.at === undefined || (note.status !== "paused" && note.status !== "running")
    ? undefined
    : {
      count: 1,
      last: [{ action: note.status === "paused" ? "pause" : "resume", by: note.by, at: new Date(note.at), ...(note.reason === undefined ? {} : { reason: note.reason }) }]
    }

/**
 * A failure of the event stream to follow the run again after: the server stopped or the
 * connection went (`lost`), or the server ended the stream because this client fell too far behind
 * it (`behind`: the server is up; this machine or its link read the run slower than it goes).
 */
interface Lost {
  readonly reason: string
  readonly behind: boolean
}

const lostOf = (server: string, error: Remote.ServerError): Lost | undefined =>
  error._tag === "Unavailable"
    ? { reason: error.reason, behind: error.behind === true }
    : error._tag === "RpcClientError"
    ? { reason: Remote.transportReason(server, error.cause ?? error), behind: false }
    : undefined

/** The line `watch` says when its stream of run `run` is lost at event `seq`, and it follows the run again from there. */
const lostLine = (server: string, run: string, lost: Lost, seq: number): string =>
  lost.behind
    ? `fell behind run ${run} on ${server} (${lost.reason}); following it again from event #${seq}…`
    : `lost ${server} (${lost.reason}); reconnecting from event #${seq}…`

/**
 * Follow `run` until it ends: completed is exit 0; failed is `RunFailed` (exit 1); a stream that
 * ends without either asks the server what became of the run (stopped: exit 0). A server that
 * stops (`Unavailable`), a connection that breaks, or a stream the server ended because this client
 * fell behind the run (`Unavailable { behind }`) does not end it: it says which in one line (in
 * the frame on a terminal, on stderr otherwise, so `--json`'s stdout stays ndjson), and follows the
 * run again from the last event it saw — no gap, no duplicate — retrying after `reconnectDelay`,
 * until `RECONNECT_FOR` of failing, when it gives up saying how to go on.
 */
export const watch = (io: Io, remote: Remote.Remote, run: string, options: WatchOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const server = remote.target.server
    const info = yield* remote.client.runs.get({ run }).pipe(remote.call("run"))
    if (info.events !== null && RemoteView.ENDED.includes(info.status) && options.since >= info.events) {
      // An ended run with nothing after `--since`: said, rather than a header and silence. It
      // exits as a watch of the run would have: 0, or 1 for a failed run. A run going on (whose
      // events the server says so far) is followed: what comes after `--since` is yet to come.
      io.stderr(
        `no events after #${options.since}: run ${info.id} (${info.ref}) ${info.status === "stopped" ? "was stopped" : info.status} ` +
          `with ${info.events.toLocaleString("en-US")} events (--since 0 shows them from the first)\n`
      )
      if (info.status === "failed") return yield* new RunFailed({ run: `${info.id} (${info.ref})`, reason: info.failure ?? "" })
      return
    }
    // Its status as the server says it, from the first frame: a run that ended (or is paused) says
    // so while its events replay from the first — minutes of them, for a run of years of bars.
    const model = yield* Ref.make<Watch.Model>(Watch.withStatus(
      { ...Watch.initial(info.id, options.keep, yield* initialCashOf(remote, info)), mode: info.mode, seq: options.since },
      info.status,
      info.failure,
      info.control
    ))
    /** Whether the run's end was among its events: a stream lost after it needs no reconnection. */
    let endSeen = false
    const screen = options.json ? undefined : io.screen
    const lines = screen === undefined && !options.json
    if (lines) io.stdout(`watching run ${info.id} (${info.ref}, ${info.mode}): ${info.status}\n`)
    const touched = screen === undefined ? Effect.void : yield* onScreen(screen, model)
    /** A line about the connection: in the frame on a terminal, else on stderr. */
    const say = (note: string | undefined) =>
      screen === undefined
        ? Effect.sync(() => note !== undefined && io.stderr(`${note}\n`))
        : Effect.zipRight(Ref.update(model, (m) => ({ ...m, note })), touched)
    /** How the last stream was lost, until the next one brings an event. */
    let reconnecting: Lost | undefined

    // What no event says — paused, resumed — as the server tells it when it changes (`runs.status`),
    // else read from it every few seconds; a failed read is the stream's to report.
    const status = (now: { readonly status: string; readonly control?: ControlHistory | undefined }) =>
      Effect.gen(function*() {
        const before = yield* Ref.get(model)
        const after = Watch.withStatus(before, now.status === "paused" || now.status === "running" ? now.status : "", undefined, now.control)
        if (after.status === before.status) return
        yield* Ref.set(model, after)
        if (lines) {
          // Who and when, as the run's control log says (a server older than `control`: neither).
          const resumedBy = Watch.lastBy(now.control, "resume")
          io.stdout(
            after.status === "paused"
              ? `run ${info.id} paused${after.pausedBy === undefined ? "" : ` by ${visible(after.pausedBy)}`} after event #${after.seq} (swarm runs resume ${info.id} goes on)\n`
              : `run ${info.id} resumed${resumedBy === undefined ? "" : ` by ${visible(resumedBy)}`}\n`
          )
        }
        yield* touched
      })
    // A paper run's approvals expire in wall-clock time, which its events cannot say (Watch.Expiry): the server's list does.
    const expiries = info.mode !== "paper"
      ? Effect.succeed(new Map<string, number>())
      : remote.client.approvals.pending({ run: info.id }).pipe(
        remote.call("approval"),
        Effect.map((pending) => new Map(pending.map((p) => [p.round, p.expiresAt] as const))),
        Effect.orElseSucceed(() => new Map<string, number>())
      )
    const wallExpiries = Effect.gen(function*() {
      if (!(yield* Ref.get(model)).pending.some((p) => p.expires.clock === "after")) return
      const found = yield* expiries
      yield* Ref.update(model, (m) => Watch.withExpiries(m, found))
      yield* touched
    })
    /** While the server tells the status as it changes: the poll leaves it to that stream. */
    let told = false
    yield* Effect.forkScoped(
      remote.client.runs.status({ run: info.id }).pipe(
        Stream.runForEach((note) => Effect.zipRight(Effect.sync(() => (told = true)), status({ status: note.status, control: controlOf(note) }))),
        // A server before it (no such procedure), or the stream lost: the poll says it, as before.
        Effect.catchAllCause(() => Effect.void),
        Effect.ensuring(Effect.sync(() => (told = false)))
      )
    )
    yield* Effect.forkScoped(
      remote.client.runs.get({ run: info.id }).pipe(
        remote.call("run"),
        Effect.flatMap((now) => (told ? Effect.void : status(now))),
        Effect.zipRight(wallExpiries),
        Effect.ignore,
        Effect.repeat(Schedule.spaced(STATUS_EVERY)),
        Effect.delay(STATUS_EVERY)
      )
    )

    const handle = (streamed: typeof StreamedEvent.Type) =>
      Effect.gen(function*() {
        if (reconnecting !== undefined) {
          const behind = reconnecting.behind
          reconnecting = undefined
          yield* say(
            screen !== undefined
              ? undefined
              : behind
              ? `following run ${info.id} on ${server} again from event #${streamed.seq}`
              : `back on ${server}: following run ${info.id} again from event #${streamed.seq}`
          )
        }
        if (options.json) io.stdout(`${streamed.json}\n`)
        const event = eventOf(streamed.json)
        if (Option.isNone(event)) return yield* Ref.update(model, (m) => ({ ...m, seq: Math.max(m.seq, streamed.seq) }))
        yield* Ref.update(model, (m) => Watch.step(m, event.value))
        if (event.value._tag === "RunCompleted" || event.value._tag === "RunFailed") endSeen = true
        const requested = event.value._tag === "ApprovalRequested" && info.mode === "paper" ? event.value.round : undefined
        const found = requested === undefined ? undefined : yield* expiries
        if (found !== undefined) yield* Ref.update(model, (m) => Watch.withExpiries(m, found))
        if (lines) {
          const wall = requested === undefined ? undefined : found?.get(requested)
          const text = Watch.line(event.value, { mode: info.mode, strategy: info.strategy, expiry: wall === undefined ? undefined : { clock: "wall", at: wall } })
          if (text !== undefined) io.stdout(`${text}\n`)
        }
        yield* touched
      })

    /** One stream of the run's events after `since`: how it was lost, if it was lost rather than ended. */
    const follow = (since: number) =>
      remote.client.runs.events({ run: info.id, since }).pipe(
        Stream.map(Either.right),
        Stream.catchAll((error) => {
          const lost = lostOf(server, error)
          return lost === undefined ? Stream.fail(error) : Stream.succeed(Either.left(lost))
        }),
        remote.follow("run"),
        Stream.runFoldEffect(undefined as Lost | undefined, (_, item) => Either.isLeft(item) ? Effect.succeed(item.left) : Effect.as(handle(item.right), undefined))
      )

    let outage: number | undefined
    let attempt = 0
    for (;;) {
      const from = (yield* Ref.get(model)).seq
      const opened = yield* Clock.currentTimeMillis
      const lost = yield* follow(from)
      if (lost === undefined) break
      const seen = yield* Ref.get(model)
      if (endSeen) break
      const now = yield* Clock.currentTimeMillis
      if (seen.seq > from || now - opened >= Duration.toMillis(CONNECTED)) {
        outage = undefined
        attempt = 0
      }
      if (outage === undefined) {
        outage = now
        yield* say(lostLine(server, info.id, lost, seen.seq))
      } else if (now - outage >= Duration.toMillis(options.giveUpAfter ?? RECONNECT_FOR)) {
        yield* say(undefined)
        return yield* new RemoteFailed({
          field: "server",
          reason: `${lost.behind ? `fell behind run ${info.id} on ${server}` : `lost ${server}`} for ${Duration.format(Duration.millis(now - outage))} (${lost.reason}): ` +
            `swarm runs watch ${info.id} --since ${seen.seq} goes on from event #${seen.seq} once it is back`,
          unavailable: true
        })
      }
      reconnecting = lost
      yield* Effect.sleep(reconnectDelay(attempt++))
    }

    const end = yield* Ref.get(model)
    if (end.status === "completed") return
    if (end.status === "failed") return yield* new RunFailed({ run: `${info.id} (${info.ref})`, reason: end.failure ?? "" })
    const now = yield* remote.client.runs.get({ run: info.id }).pipe(remote.call("run"))
    // The last frame says how the run ended, as the lines do.
    yield* Ref.update(model, (m) => Watch.withStatus({ ...m, note: undefined }, now.status, now.failure, now.control))
    if (now.status === "stopped") {
      if (lines) io.stdout(`run ${now.id} (${now.ref}) was stopped after event #${end.seq}\n`)
      return
    }
    if (now.status === "completed") return
    if (now.status === "failed") return yield* new RunFailed({ run: `${now.id} (${now.ref})`, reason: now.failure ?? "" })
    return yield* new RemoteFailed({
      field: "server",
      reason: `${server} ended the event stream while run ${now.id} is ${now.status}: ` +
        `swarm runs watch ${now.id} --since ${end.seq} goes on from here`
    })
  }))

const watchOptions = {
  since: since("seq", "Start after this event number (default 0: from the run's first event)."),
  last: Options.integer("last").pipe(
    Options.withPseudoName("n"),
    Options.optional,
    Options.mapEffect(checked("--last", (n: number) =>
      Number.isInteger(n) && n >= 0 && n <= 100 ? Either.right(n) : Either.left(`expected 0 to 100, got ${n}`))),
    Options.withDescription(`How many of the last decisions and verdicts the view shows (default ${Watch.KEEP}).`)
  ),
  json: json("Print each event as the JSON line the server recorded, one per line, instead of the view.")
}

const runArg = Args.text({ name: "run" }).pipe(Args.withDescription("The run: its id (run_…) or <strategy>#<number>, as `swarm runs list` shows it."))

export const watchCommand = (io: Io, wiring: Wiring) =>
  Command.make("watch", { run: runArg, ...watchOptions, ...Remote.options }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* RunRef.check("<run>", flags.run)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        watch(io, remote, ref, {
          since: Option.getOrElse(flags.since, () => 0),
          keep: Option.getOrElse(flags.last, () => Watch.KEEP),
          json: flags.json
        })
      )
    }).pipe(Effect.withSpan("swarm.runs.watch"))).pipe(
    Command.withDescription(
      "Follow a run live: equity, positions, the last decisions and verdicts, pending approvals (redrawn on a terminal, a line per event otherwise); ends when the run does."
    )
  )

// ---------------------------------------------------------------------------------------------
// start, stop, pause, resume

/** `--data`: `sample` (the server's sample data) or `synthetic:<bars>[:<seed>]` (its seeded synthetic market). */
export const parseData = (text: string): Either.Either<RunData, string> => {
  if (text === "sample") return Either.right({ _tag: "sample" })
  const m = /^synthetic:(\d{1,7})(?::(-?\d{1,15}))?$/.exec(text)
  if (m === null) return Either.left(`expected sample or synthetic:<bars>[:<seed>], got ${RunRef.shown(text)}`)
  const bars = Number(m[1])
  if (bars < 1 || bars > 1_000_000) return Either.left(`a synthetic market has 1 to 1000000 bars, got ${bars}`)
  return Either.right({ _tag: "synthetic", bars, ...(m[2] === undefined ? {} : { seed: Number(m[2]) }) })
}

const startOptions = {
  mode: choice("mode", ["backtest", "paper"]).pipe(
    Options.map(Option.getOrElse(() => "backtest" as const)),
    Options.withDescription("backtest: as fast as possible; paper: paced in wall-clock time (--speed).")
  ),
  data: Options.text("data").pipe(
    Options.withPseudoName("sample|synthetic:<bars>[:<seed>]"),
    Options.optional,
    Options.mapEffect(checked("--data", parseData)),
    Options.withDescription("The bars: the server's sample data (default), or its synthetic market of that many bars per symbol.")
  ),
  speed: Options.float("speed").pipe(
    Options.withPseudoName("factor"),
    Options.optional,
    Options.mapEffect(checked("--speed", (x: number) =>
      Number.isFinite(x) && x >= 0.001 && x <= 1_000_000_000 ? Either.right(x) : Either.left(`expected 0.001 to 1000000000, got ${x}`))),
    Options.withDescription("Paper runs: how many times faster than the bars' own spacing (86400: a daily bar a second). Default 1.")
  ),
  seed: Options.text("seed").pipe(
    Options.withPseudoName("n"),
    Options.optional,
    Options.mapEffect(checked("--seed", (text: string) =>
      /^\d{1,16}$/.test(text) ? Either.right(text) : Either.left(`expected a non-negative integer (at most 16 digits), got ${RunRef.shown(text)}`))),
    Options.withDescription(
      "Seeds the run's randomness: the Random its agents read and the language model's sampling. The built-in classic analysts use none. Default 0."
    )
  ),
  version: versionOption("Run this version of the strategy (default the latest)."),
  watch: Options.boolean("watch").pipe(Options.withDescription("Then follow it, as `swarm runs watch` does, until it ends.")),
  json: json("Print the started run as one JSON document on stdout (with --watch: ndjson, the run on the first line, then its events).")
}

export const start = (io: Io, wiring: Wiring) =>
  Command.make("start", { strategy: strategyArg, ...startOptions, ...Remote.options }, (flags) =>
    Effect.gen(function*() {
      const strategy = yield* strategyRef("<strategy>", flags.strategy)
      if (flags.mode === "backtest" && Option.isSome(flags.speed)) {
        return yield* new UsageError({ field: "--speed", reason: "only paper runs are paced: add --mode paper, or leave --speed out" })
      }
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const info = yield* remote.client.runs.start({
            strategy,
            mode: flags.mode,
            data: Option.getOrElse(flags.data, (): RunData => ({ _tag: "sample" })),
            ...Option.match(flags.version, { onNone: () => ({}), onSome: (version) => ({ version }) }),
            ...Option.match(flags.seed, { onNone: () => ({}), onSome: (seed) => ({ seed }) }),
            ...Option.match(flags.speed, { onNone: () => ({}), onSome: (speed) => ({ speed }) })
          }).pipe(remote.call("run"))
          io.stdout(
            flags.json ? (flags.watch ? RemoteView.runLine(info) : RemoteView.runJson(info)) : RemoteView.runChanged("started", info, flags.watch)
          )
          if (flags.watch) yield* watch(io, remote, info.id, { since: 0, keep: Watch.KEEP, json: flags.json })
        })
      )
    }).pipe(Effect.withSpan("swarm.runs.start"))).pipe(
    Command.withDescription("Start a run of one of your strategies on the server: a backtest, or a paper run paced in wall-clock time.")
  )

type Change = "stop" | "pause" | "resume"

const DONE: Record<Change, string> = { stop: "stopped", pause: "paused", resume: "resumed" }

/** `--reason <text>`, as `runs stop|pause|resume|trading` take it. */
const reasonOption = (description: string) => Options.text("reason").pipe(Options.withPseudoName("text"), Options.optional, Options.withDescription(description))

/** A `--reason` as the server takes it (1 to 500 characters, trimmed): none given, nothing sent, so a server older than the option is asked as before. */
const reasonOf = (given: Option.Option<string>) =>
  Option.match(Option.map(given, (text) => text.trim()), {
    onNone: () => Effect.succeed({}),
    onSome: (text) =>
      text === "" || text.length > 500
        ? Effect.fail(new UsageError({ field: "--reason", reason: text === "" ? "is empty: say why, or leave --reason out" : `is ${text.length} characters long: at most 500` }))
        : Effect.succeed({ reason: text })
  })

const change = (verb: Change, description: string) => (io: Io, wiring: Wiring) =>
  Command.make(verb, {
    run: runArg,
    reason: reasonOption(`Why, for the run's control log (\`runs show\`, \`runs watch\`, the dashboard's status)${verb === "stop" ? " and its end (`stopped by <you>: <reason>`)" : ""}: 1 to 500 characters.`),
    json: json("Print the run as one JSON document on stdout."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* RunRef.check("<run>", flags.run)
      const reason = yield* reasonOf(flags.reason)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const request = { run: ref, ...reason }
          const info: RunInfo = yield* (verb === "stop"
            ? remote.client.runs.stop(request)
            : verb === "pause"
            ? remote.client.runs.pause(request)
            : remote.client.runs.resume(request)).pipe(remote.call("run"))
          io.stdout(flags.json ? RemoteView.runJson(info) : RemoteView.runChanged(DONE[verb], info))
        })
      )
    }).pipe(Effect.withSpan(`swarm.runs.${verb}`))).pipe(Command.withDescription(description))

export const stop = change("stop", "Stop a live run on the server: it ends `stopped`, keeping what it recorded.")
export const pause = change("pause", "Pause a live run on the server: it holds before its next bar until resumed (`runs trading` still moves its trading state meanwhile).")
export const resume = change("resume", "Resume a paused run on the server.")

// ---------------------------------------------------------------------------------------------
// trading: halt, reduce, resume

/** What each word of `runs trading` asks the run's risk officer for. */
const TRADING = { halt: "halted", reduce: "reducing", resume: "active" } as const
type TradingWord = keyof typeof TRADING

/** A trading-state change as `runs trading` prints it: `run … (bar time): trading halted → active by alice: news out`. */
export const tradingChanged = (change: TradingChange): string => {
  const t = change.transition
  return `run ${change.run}: trading ${t.from} → ${t.to} by ${visible(t.actor ?? "")} at the bar of ${time(t.at)}: ${visible(t.reason)}\n`
}

export const trading = (io: Io, wiring: Wiring) =>
  Command.make("trading", {
    run: runArg,
    to: Args.text({ name: "halt|reduce|resume" }).pipe(
      Args.withDescription("halt: no order passes; reduce: only risk-reducing orders pass; resume: lift a halt or a reduce (the only way a halt is lifted).")
    ),
    reason: reasonOption("Why, for the run's events and its control log (1 to 500 characters; default: the new state and your name)."),
    json: json("Print the change as one JSON document on stdout: the run, its trading status now, and the transition."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* RunRef.check("<run>", flags.run)
      if (!Object.hasOwn(TRADING, flags.to)) {
        return yield* new UsageError({ field: "<halt|reduce|resume>", reason: `expected halt, reduce or resume, got ${RunRef.shown(flags.to)}` })
      }
      const state = TRADING[flags.to as TradingWord]
      const reason = yield* reasonOf(flags.reason)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const change = yield* remote.client.runs.trading({ run: ref, state, ...reason }).pipe(remote.call("run", "take the command at the run's next bar"))
          io.stdout(flags.json ? toJson(TradingChange, change) : tradingChanged(change))
        })
      )
    }).pipe(Effect.withSpan("swarm.runs.trading"))).pipe(
    Command.withDescription(
      "Move a live run's trading state on the server (any server sharing the run's database): halt, reduce (only risk-reducing orders), or resume (lift a halt or a reduce). Taken at the run's next bar and recorded there; a paused run takes it at once, at the bar it takes next, and stays paused (halt it, then resume it halted)."
    )
  )
