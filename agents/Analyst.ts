/**
 * The analyst actor: runs one analyst model (agents/analysts/*) for every symbol of a run. Each
 * `RequestOpinions` folds that timestamp's bars into the per-symbol model states, in the order the
 * rounds came (each round's outside signals first, to a model that `observe`s them), and answers
 * with the opinions. A model that throws crashes the actor — the ask gets
 * `NoReply(crashed)`, the coordinator counts an abstention, the supervisor restarts the analyst with
 * fresh states (its indicators warm up again) — and the run goes on, unless it keeps failing: its
 * warm-up bars are not progress (`progress` below), so one that fails on every bar once warmed up
 * is given up on and the run ends failed (src/swarm/Run.ts).
 *
 * An opinion's rationale is written only when someone reads it (see `LazyOpinion`): a backtest
 * asks for millions of opinions and logs the words of a few.
 *
 * An opinion in a reply is valid until this analyst's next request, no longer: it is a view of the
 * model's signal, which the model overwrites on the symbol's next bar (agents/analysts/Model.ts),
 * and the view itself is re-pointed to that bar. Read a reply before asking again; keep an opinion
 * past that — an event, a test's list of answers — with `copyOpinion`. The reply array is the
 * caller's: a fresh one per request.
 */
import { Effect } from "effect"
import { RequestOpinions, type RoundRequest } from "../schemas/AnalystProtocol.js"
import type { AgentId, RoundId } from "../schemas/Ids.js"
import type { Opinion } from "../schemas/Opinion.js"
import * as Actor from "../src/actor/Actor.js"
import type { Trace } from "../src/telemetry/Trace.js"
import type { AnyModel, Signal } from "./analysts/Model.js"
import { copySignal } from "./analysts/Model.js"
import { seededDraws } from "./analysts/internal/draws.js"

export interface AnalystOptions {
  readonly name: AgentId
  readonly model: AnyModel
  /** The model's decoded config. */
  readonly config: unknown
  readonly allowShort: boolean
  /** The run's seed: the model's randomness per symbol is seeded from it (`Model.init`'s `random`). Default "0". */
  readonly seed?: string
}

/**
 * A lasting copy of an opinion: a plain object in the schema's field order, its rationale written
 * and its features copied, which the analyst's later requests do not change. What to keep of a
 * reply; `JSON.stringify` of the opinion gives the same text.
 */
export const copyOpinion = (opinion: Opinion): Opinion => ({
  round: opinion.round,
  agent: opinion.agent,
  symbol: opinion.symbol,
  ts: opinion.ts,
  direction: opinion.direction,
  confidence: opinion.confidence,
  horizon: opinion.horizon,
  rationale: opinion.rationale,
  features: { ...opinion.features }
})

export const make = ({ allowShort, config, model, name, seed = "0" }: AnalystOptions) => {
  const source: Source = { agent: name, horizon: model.horizon(config), explain: (signal) => model.explain(signal, config, allowShort) }
  const observe = model.observe
  return Actor.make({
    protocol: RequestOpinions,
    // A message on every bar of a run (src/actor/Behavior.ts).
    busy: true,
    // State per symbol, made fresh at every (re)start: a restarted analyst warms up again.
    setup: () => Effect.sync(() => new Tracks()),
    // At work once it has given an opinion: the bars of its warm-up, answered with none, are not
    // progress, so one that fails on every bar once warmed up is given up on (src/swarm/Run.ts).
    progress: (tracks) => {
      for (const track of tracks.bySymbol.values()) if (track.opinion !== undefined) return true
      return false
    },
    behavior: (tracks, request, context) =>
      Effect.suspend(() => {
        const rounds = request.rounds
        // Sized for every round, cut to the opinions given: pushed one by one, it grew a few times a request.
        const opinions: Array<Opinion> = new Array(rounds.length)
        let given = 0
        for (let i = 0; i < rounds.length; i++) {
          const round = rounds[i]!
          const bar = round.bar
          let track = tracks.at(i, bar.symbol)
          if (track === undefined) tracks.add(i, bar.symbol, (track = new Track(model.init(config, seededDraws(seed, name, bar.symbol)))))
          // A second round of the symbol in one request (the coordinator sends one a symbol): the
          // first one's opinion keeps a copy of its signal, which this update overwrites.
          if (track.answered === request) track.opinion!.pin()
          const signals = round.signals
          if (signals !== undefined && observe !== undefined) {
            for (let s = 0; s < signals.length; s++) observe(track.state, signals[s]!, config)
          }
          const signal = model.update(track.state, bar, config, allowShort)
          if (signal === undefined) continue
          const wrong = signalFault(signal, allowShort)
          if (wrong !== undefined) throw new InvalidSignal(`${model.type} gave ${wrong} for ${bar.symbol} at ${new Date(bar.ts).toISOString()}`)
          if (track.opinion === undefined || track.answered === request) track.opinion = new LazyOpinion(round, signal, source)
          else track.opinion.repoint(round, signal)
          track.answered = request
          opinions[given++] = track.opinion
        }
        opinions.length = given
        const trace = context.trace
        if (trace !== undefined) traceOpinions(trace, name, opinions)
        return Effect.as(context.reply(request, opinions), tracks)
      })
  })
}

/** A model's signal that breaks the contract of agents/analysts/Model.ts: the actor crashes with it, naming the model and the bar. */
export class InvalidSignal extends Error {
  override readonly name = "InvalidSignal"
}

/**
 * What is wrong with `signal`, in words, or undefined when nothing is: a direction that is none of
 * long, short and flat, a short when the strategy does not allow shorting, a confidence that is not
 * a number from 0 to 1, a feature that is not a finite number (its JSON would be null).
 */
export const signalFault = (signal: Signal, allowShort: boolean): string | undefined => {
  const direction = signal.direction
  if (direction !== "long" && direction !== "flat" && direction !== "short") return `direction ${JSON.stringify(direction) ?? String(direction)}, which is none of long, short and flat`
  if (direction === "short" && !allowShort) return "a short while the strategy does not allow shorting (a model gives flat then)"
  const confidence = signal.confidence
  if (typeof confidence !== "number" || !(confidence >= 0 && confidence <= 1)) return `confidence ${String(confidence)}; a confidence is a number from 0 to 1`
  const features = signal.features
  for (const key in features) {
    const value = features[key]
    if (typeof value !== "number" || !Number.isFinite(value)) return `feature ${key} = ${String(value)}; a feature is a finite number`
  }
  return undefined
}

/** In a traced round, the analyst's span says what it answered: an event per opinion. */
export const traceOpinions = (trace: Trace, agent: AgentId, opinions: ReadonlyArray<Opinion>): void => {
  trace.attribute("swarm.agent", agent)
  trace.attribute("swarm.opinions", opinions.length)
  for (const opinion of opinions) {
    const rationale = opinion.rationale
    trace.event("opinion", {
      "swarm.round": opinion.round,
      "opinion.direction": opinion.direction,
      "opinion.confidence": opinion.confidence,
      "opinion.horizon": opinion.horizon,
      "opinion.rationale": rationale.length > 300 ? `${rationale.slice(0, 300)}…` : rationale
    })
  }
}

/**
 * The symbols' tracks, by symbol, and by the position of the symbol's round in the last request
 * that had it there: the coordinator asks for the same symbols in the same order on every
 * timestamp, so the round at position `i` is almost always the symbol it was last time, found by
 * comparing one string (the same string object, bar after bar) instead of hashing it into the map.
 */
class Tracks {
  readonly bySymbol = new Map<string, Track>()
  private readonly symbols: Array<string | undefined> = []
  private readonly tracks: Array<Track | undefined> = []

  /** The track of `symbol`, whose round is at position `i` of the request; undefined before its first bar. */
  at(i: number, symbol: string): Track | undefined {
    if (this.symbols[i] === symbol) return this.tracks[i]
    const track = this.bySymbol.get(symbol)
    if (track !== undefined) this.remember(i, symbol, track)
    return track
  }

  add(i: number, symbol: string, track: Track): void {
    this.bySymbol.set(symbol, track)
    this.remember(i, symbol, track)
  }

  private remember(i: number, symbol: string, track: Track): void {
    // Positions fill in order (a request's rounds are 0…n-1): no holes in the arrays.
    while (this.symbols.length < i) {
      this.symbols.push(undefined)
      this.tracks.push(undefined)
    }
    this.symbols[i] = symbol
    this.tracks[i] = track
  }
}

/** One symbol's model state, and the opinion that answers for it, re-pointed on every request. */
class Track {
  opinion: LazyOpinion | undefined = undefined
  /** The request `opinion` last answered. */
  answered: RequestOpinions | undefined = undefined
  constructor(readonly state: unknown) {}
}

/** What every opinion of one analyst shares. */
interface Source {
  readonly agent: AgentId
  readonly horizon: number
  readonly explain: (signal: Signal) => string
}

/**
 * The model's words for `signal` — or, when its `explain` throws (or gives no string), a rationale
 * saying so: `explain failed: <analyst>: <error>`. The words are written lazily, by whoever reads
 * them (the coordinator logging a round, the event log encoding it, a trace), and which opinions
 * are read depends on the events' detail: a throw there would crash that reader, not the analyst —
 * the coordinator restarted, the bar's update dead-lettered — and the trading would depend on how
 * much the run logs. A model's defect in its words is the analyst's, and shows in them; it never
 * changes a signal, so it never changes the trading.
 */
const explained = (source: Source, signal: Signal): string => {
  let words: unknown
  try {
    words = source.explain(signal)
  } catch (error) {
    return `explain failed: ${source.agent}: ${describe(error)}`
  }
  return typeof words === "string" ? words : `explain failed: ${source.agent}: it gave ${words === null ? "null" : typeof words}, not a string`
}

/** A thrown value in one line, without its stack; never throws itself. */
const describe = (error: unknown): string => {
  try {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  } catch {
    return "an unprintable value"
  }
}

/**
 * An `Opinion` read through the round it answers, the model's signal and its analyst: four slots
 * instead of the nine fields of a plain opinion. One per symbol per analyst, re-pointed to the
 * symbol's round and signal on every request (hence valid until the analyst's next request): a
 * six-analyst backtest made six of them a bar. `rationale` is the model's `explain`, computed on
 * first read and kept until re-pointed. `toJSON` gives the plain object in the schema's order
 * (`copyOpinion`), so `JSON.stringify` gives the same text as for a plain opinion.
 *
 * The fields are getters on the prototype, not own keys: `Schema.is(Opinion)` (exact by default)
 * refuses it — pass `{ exact: false }` — and a spread or `structuredClone` drops them; encode it
 * (`Schema.encodeSync(Opinion)`) or `copyOpinion` it for a plain one.
 */
class LazyOpinion implements Opinion {
  #rationale: string | undefined = undefined

  constructor(
    private request: RoundRequest,
    private signal: Signal,
    private readonly source: Source
  ) {}

  /** Answer another round of the symbol with the model's signal for it; the old rationale goes. */
  repoint(request: RoundRequest, signal: Signal): void {
    this.request = request
    this.signal = signal
    this.#rationale = undefined
  }

  /** Hold a copy of the signal, for a view the analyst will not re-point but whose model will overwrite. */
  pin(): void {
    this.signal = copySignal(this.signal)
  }

  get round(): RoundId {
    return this.request.round
  }
  get agent(): AgentId {
    return this.source.agent
  }
  get symbol(): Opinion["symbol"] {
    return this.request.bar.symbol
  }
  get ts(): Opinion["ts"] {
    return this.request.bar.ts
  }
  get direction(): Opinion["direction"] {
    return this.signal.direction
  }
  get confidence(): number {
    return this.signal.confidence
  }
  get horizon(): number {
    return this.source.horizon
  }
  get features(): Opinion["features"] {
    return this.signal.features
  }
  get rationale(): string {
    return (this.#rationale ??= explained(this.source, this.signal))
  }

  toJSON(): Opinion {
    return copyOpinion(this)
  }
}
