/**
 * The agent types a strategy can name. Adding an analyst is one model file in agents/analysts/ and,
 * here, an import and an entry in `analysts` below (agents/analysts/Model.ts says how to write one);
 * tests check that every registered type decodes its default config and answers its protocol
 * (test/agents/registry.test.ts), every model's signal contract and every LLM type's offline
 * determinism (test/agents/analysts.test.ts).
 */
import { Either, Option, ParseResult, Schema } from "effect"
import { InvalidAgent } from "../schemas/AnalystProtocol.js"
import type { AgentId } from "../schemas/Ids.js"
import type { Bar } from "../schemas/Market.js"
import { type AgentConfig, agentName } from "../schemas/Strategy.js"
import { clip, clipAfter } from "../src/internal/clip.js"
import { plainly } from "../src/internal/issues.js"
import { fieldOf } from "../src/swarm/StrategyFile.js"
import type { RequestOpinions } from "../schemas/AnalystProtocol.js"
import { jsonSchemaOf, type LlmSession } from "../src/llm/LlmSession.js"
import type { ActorSpec } from "../src/actor/Behavior.js"
import type { RunLog } from "../src/swarm/RunLog.js"
import * as Analyst from "./Analyst.js"
import { seededDraws } from "./analysts/internal/draws.js"
import * as LlmAnalyst from "./LlmAnalyst.js"
import * as LlmDebate from "./analysts/LlmDebate.js"
import * as LlmSingle from "./analysts/LlmSingle.js"
import * as BollingerBreakout from "./analysts/BollingerBreakout.js"
import * as EmaCrossover from "./analysts/EmaCrossover.js"
import * as MacdMomentum from "./analysts/MacdMomentum.js"
import { MAX_PERIOD } from "./analysts/internal/params.js"
import type { AnyModel } from "./analysts/Model.js"
import * as RsiReversion from "./analysts/RsiReversion.js"
import * as SmaCrossover from "./analysts/SmaCrossover.js"
import * as TradingView from "./analysts/TradingView.js"
import * as VolumeSurge from "./analysts/VolumeSurge.js"

export const analysts: ReadonlyMap<string, AnyModel> = new Map<string, AnyModel>([
  [SmaCrossover.model.type, SmaCrossover.model],
  [EmaCrossover.model.type, EmaCrossover.model],
  [RsiReversion.model.type, RsiReversion.model],
  [BollingerBreakout.model.type, BollingerBreakout.model],
  [MacdMomentum.model.type, MacdMomentum.model],
  [VolumeSurge.model.type, VolumeSurge.model],
  [TradingView.model.type, TradingView.model]
])

/**
 * The analysts that think with a language model (agents/LlmAnalyst.ts): one file, and an import and an
 * entry here each, like the models above.
 */
export const llmAnalysts: ReadonlyMap<string, LlmAnalyst.AnyLlmAnalystType> = new Map<string, LlmAnalyst.AnyLlmAnalystType>([
  [LlmSingle.analyst.type, LlmSingle.analyst],
  [LlmDebate.analyst.type, LlmDebate.analyst]
])

/** What an LLM analyst needs from its run. */
export interface LlmContext {
  readonly session: LlmSession
  readonly log: RunLog
  readonly deadlineMillis: number
  /** The round deadline is wall-clock time (paper runs), not the run's virtual time. */
  readonly wallClock: boolean
  /**
   * A `plan` entry's role is its type's `planRole` (a run whose `RunStarted` says `reasoningRoles:
   * "own"`), or `analyst` whatever the type (a re-execution of a run recorded before).
   */
  readonly ownPlanRole: boolean
  /** A reflection scores a flat as "not long" (a run that may not short, recorded with `RunStarted.flatScoring`). */
  readonly flatMeansNotLong?: boolean
  /** Told of each round the analyst gave up on at its deadline (`CoordinatorStats.abstained`: `gaveUp`). */
  readonly onDeadline?: () => void
}

export type AnalystActor = ActorSpec<RequestOpinions, any, never, "backpressure">

/** A strategy's analyst, ready to spawn: its actor spec and the horizon its opinions are meant for. */
export interface AnalystOf {
  readonly name: AgentId
  /** Whether it thinks with a language model (and needs the run's `LlmContext`). */
  readonly llm: boolean
  /** Its actor in a run of seed `seed` (default "0"), which seeds its model's randomness (`Model.init`). */
  readonly actor: (llm: LlmContext | undefined, seed?: string) => AnalystActor
  readonly horizon: number
  /** The bytes of look-back windows its state takes per symbol (`windowBytes`). */
  readonly bytesPerSymbol: number
  /**
   * The bars of a symbol it folds before its first opinion on that symbol (`warmUpOf`), or
   * undefined when bars alone never bring one (an analyst of outside signals). Measured when first
   * asked, not as the roster is resolved: a run never asks, only what warns before one.
   */
  readonly warmUp: () => number | undefined
}

/**
 * The most a run's analysts may hold in look-back windows, over all its symbols: 256 MiB. Each
 * look-back is at most 10,000 bars (agents/analysts/internal/params.ts), but a strategy multiplies
 * them by its analysts and its symbols: 100 analysts with 10,000-bar windows over 1,000 symbols
 * asked for tens of gigabytes, and took the whole server down with the run when its bars came.
 */
export const MAX_WINDOW_BYTES = 256 * 1024 * 1024

/**
 * The bytes of the look-back windows reachable from `state`, a model's state for one symbol: the
 * typed arrays (the indicators' rings: src/trading/Indicators.ts) by their length in bytes, and the
 * plain arrays, maps and sets (a library's indicator keeps its window in one: trading-signals'
 * `prices`) at 8 bytes an entry. Plain numbers and small objects are not counted; they do not grow
 * with a look-back.
 */
export const windowBytes = (state: unknown): number => measure(state).bytes

/** `windowBytes`, and whether `state` holds a plain array, map or set: a window that may fill as bars come. */
const measure = (state: unknown): { readonly bytes: number; readonly growable: boolean } => {
  const seen = new Set<object>()
  let bytes = 0
  let growable = false
  const stack: Array<unknown> = [state]
  while (stack.length > 0) {
    const value = stack.pop()
    if (typeof value !== "object" || value === null || seen.has(value)) continue
    seen.add(value)
    if (ArrayBuffer.isView(value)) {
      bytes += value.byteLength
      continue
    }
    if (Array.isArray(value)) {
      growable = true
      bytes += 8 * value.length
      for (const item of value) if (typeof item === "object" && item !== null) stack.push(item)
      continue
    }
    if (value instanceof Map) {
      growable = true
      bytes += 16 * value.size
      for (const [k, v] of value) stack.push(k, v)
      continue
    }
    if (value instanceof Set) {
      growable = true
      bytes += 8 * value.size
      for (const v of value) stack.push(v)
      continue
    }
    for (const key of Object.keys(value)) stack.push((value as Record<string, unknown>)[key])
  }
  return { bytes, growable }
}

/** The bar `i` of the made-up series a model's state is grown on to measure it (`grownBytes`): it rises, falls and churns. */
const probeBar = (i: number): Bar => {
  const close = 100 + 20 * Math.sin(i / 40) + 5 * Math.sin(i / 7) + (i % 11) * 0.1
  return { symbol: "PROBE" as Bar["symbol"], ts: (i * 86_400_000) as Bar["ts"], open: close * 0.998, high: close * 1.01, low: close * 0.99, close, volume: 1_000 + (i % 13) * 250 }
}

/** The randomness of a state grown on made-up bars: seeded as a run of seed "probe" would. */
const probeDraws = (model: AnyModel) => seededDraws("probe", model.type, "PROBE")

/** The most bars a state is grown on: more than any look-back (`MAX_PERIOD`), and two of them together. */
const PROBE_MAX_BARS = 65_536

/**
 * The bytes of a model's look-back windows for one symbol under `config`: its fresh state's (rings
 * allocated at `init`), or — a window that fills as bars come, as a library's indicator keeps it —
 * what it holds once grown on made-up bars: measured at 1,024 bars and at each doubling, until a
 * doubling adds nothing (the windows are full) or at 65,536 bars. Measured, not declared, so a new
 * model is counted as it is. Only a state that holds a plain array, map or set is grown (the built-in
 * models' rings are allocated at `init`); a model that throws on the made-up bars is counted as it starts.
 */
const grownBytes = (model: AnyModel, config: unknown): number => {
  const state = model.init(config, probeDraws(model))
  const fresh = measure(state)
  // Rings allocated at the start (src/trading/Indicators.ts) and plain numbers: nothing fills.
  if (!fresh.growable) return fresh.bytes
  let bytes = fresh.bytes
  let fed = 0
  try {
    for (let bars = 1_024; bars <= PROBE_MAX_BARS; bars *= 2) {
      while (fed < bars) model.update(state, probeBar(fed++), config, true)
      const now = windowBytes(state)
      if (fed > 1_024 && now === bytes) return Math.max(fresh.bytes, now)
      bytes = now
    }
  } catch {
    return fresh.bytes
  }
  return Math.max(fresh.bytes, bytes)
}

/** `grownBytes` by model and params: a strategy is resolved at every save and start, and the measure takes thousands of bars. */
const measured = new WeakMap<AnyModel, Map<string, number>>()
const MEASURED_PER_MODEL = 256

const windowBytesOf = (model: AnyModel, config: unknown): number => {
  let key: string | undefined
  try {
    key = JSON.stringify(config)
  } catch {
    key = undefined
  }
  let byConfig = measured.get(model)
  const known = key === undefined ? undefined : byConfig?.get(key)
  if (known !== undefined) return known
  const bytes = grownBytes(model, config)
  if (key !== undefined) {
    if (byConfig === undefined) measured.set(model, (byConfig = new Map()))
    if (byConfig.size >= MEASURED_PER_MODEL) byConfig.delete(byConfig.keys().next().value!)
    byConfig.set(key, bytes)
  }
  return bytes
}

/**
 * The bars of made-up data (`probeBar`) a fresh state of `model` folds under `config` before it
 * gives its first signal — its warm-up, the look-back it needs before it can say anything: 20 for
 * an SMA crossover of slow period 20 — or undefined when none comes in `PROBE_MAX_BARS` bars (more
 * than any two look-backs together: a model whose opinions come from outside signals) or the model
 * throws on them. Measured, not declared, like the windows' bytes: a new model is measured as it is.
 */
const measureWarmUp = (model: AnyModel, config: unknown): number | undefined => {
  try {
    const state = model.init(config, probeDraws(model))
    for (let i = 0; i < PROBE_MAX_BARS; i++) {
      if (model.update(state, probeBar(i), config, true) !== undefined) return i + 1
    }
  } catch {
    return undefined
  }
  return undefined
}

/** `measureWarmUp` by model and params, cached as `windowBytesOf` is. */
const warmedUp = new WeakMap<AnyModel, Map<string, number | undefined>>()

export const warmUpOf = (model: AnyModel, config: unknown): number | undefined => {
  let key: string | undefined
  try {
    key = JSON.stringify(config)
  } catch {
    key = undefined
  }
  let byConfig = warmedUp.get(model)
  if (key !== undefined && byConfig?.has(key) === true) return byConfig.get(key)
  const bars = measureWarmUp(model, config)
  if (key !== undefined) {
    if (byConfig === undefined) warmedUp.set(model, (byConfig = new Map()))
    if (byConfig.size >= MEASURED_PER_MODEL) byConfig.delete(byConfig.keys().next().value!)
    byConfig.set(key, bars)
  }
  return bars
}

const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MiB`

/**
 * Why a roster over `symbols` symbols would hold more than `MAX_WINDOW_BYTES` of look-back windows,
 * naming the analysts that take the most, or undefined.
 */
export const oversizedRoster = (roster: ReadonlyArray<AnalystOf>, symbols: number): InvalidAgent | undefined => {
  const total = roster.reduce((sum, a) => sum + a.bytesPerSymbol, 0) * symbols
  if (total <= MAX_WINDOW_BYTES) return undefined
  const largest = [...roster].sort((a, b) => b.bytesPerSymbol - a.bytesPerSymbol)
  const named = largest.slice(0, 3).map((a) => `${a.name} ${mib(a.bytesPerSymbol * symbols)}`).join(", ")
  return new InvalidAgent({
    agent: largest[0]!.name,
    field: "agents",
    reason: `the analysts' look-back windows would take ${mib(total)} over ${symbols} symbol${symbols === 1 ? "" : "s"} (${named}${roster.length > 3 ? ", …" : ""}), ` +
      `more than the ${mib(MAX_WINDOW_BYTES)} a run may hold: trade fewer symbols, or use fewer or shorter look-backs`
  })
}

/**
 * The bytes of look-back windows a model's state for one symbol takes under `config`
 * (`windowBytesOf`), or why there is no such state. Its params decoded, but a look-back a model does not bound through
 * `period` (agents/analysts/internal/params.ts) can still be one no machine holds: `init` throws
 * (`Invalid typed array length`, `Array buffer allocation failed`), which is the strategy's
 * problem, not the server's — or it allocates more than a whole run may hold, for one symbol.
 * Either way the agent's params are refused, as a bound `period` would have refused them.
 */
const stateBytes = (model: AnyModel, config: unknown): number | string => {
  let bytes: number
  try {
    bytes = windowBytesOf(model, config)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    return `${model.type} cannot set up a symbol's state with these params: ${clip(message)}` +
      ` (a look-back may be at most ${MAX_PERIOD} bars)`
  }
  if (bytes <= MAX_WINDOW_BYTES) return bytes
  return `its look-back windows would take ${mib(bytes)} for one symbol, more than the ${mib(MAX_WINDOW_BYTES)} a run may hold ` +
    `(a look-back may be at most ${MAX_PERIOD} bars)`
}

/**
 * Why one of an LLM analyst type's answer schemas cannot be sent to a model as JSON Schema (its
 * calls' `format`), or undefined. Found here, a strategy naming the type is refused when it is
 * saved or run; found at the first call, the agent crashed on every round and the run completed
 * without it.
 */
export const unsendableAnswer = (kind: LlmAnalyst.AnyLlmAnalystType): string | undefined => {
  // A type written before `answers` existed, run without the type checker.
  if (!Array.isArray(kind.answers) || kind.answers.length === 0) {
    return `${kind.type} declares no answer schemas: list every schema its calls ask for in its \`answers\` (agents/LlmAnalyst.ts)`
  }
  for (let i = 0; i < kind.answers.length; i++) {
    try {
      jsonSchemaOf(kind.answers[i]!)
    } catch (error) {
      const message = (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, "; ")
      return `${kind.type}'s answer schema ${i + 1} of ${kind.answers.length} cannot be sent to a model as JSON Schema: ${clip(message, 300)}`
    }
  }
  return undefined
}

/** Whether any agent of a roster thinks with a language model. */
export const usesLlm = (agents: ReadonlyArray<AgentConfig>): boolean => agents.some((agent) => llmAnalysts.has(agent.type))

/** The `index`-th agent entry of a strategy resolved against `registry`, or why it cannot be. */
export const analystOf = (
  agent: AgentConfig,
  index: number,
  allowShort: boolean,
  registry: ReadonlyMap<string, AnyModel> = analysts
): Either.Either<AnalystOf, InvalidAgent> => {
  const name = agentName(agent) as AgentId
  const model = registry.get(agent.type)
  const thinker = model === undefined ? llmAnalysts.get(agent.type) : undefined
  if (model === undefined && thinker === undefined) {
    return Either.left(
      new InvalidAgent({
        agent: name,
        field: `agents[${index}].type`,
        reason: `unknown agent type "${clip(agent.type)}"; the registered ones are ${[...registry.keys(), ...llmAnalysts.keys()].join(", ")}`
      })
    )
  }
  const config = Schema.decodeUnknownEither(model?.config ?? thinker!.config, { errors: "first", onExcessProperty: "error" })(agent.params)
  if (Either.isLeft(config)) {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(config.left)[0]
    const path = issue === undefined || issue.path.length === 0 ? "" : `.${fieldOf(issue.path)}`
    // The schema's message quotes the value it got, whole: clipped, as a strategy file's own problems are.
    return Either.left(
      new InvalidAgent({ agent: name, field: clip(`agents[${index}].params${path}`), reason: plainly(clipAfter(issue?.message ?? "invalid", ", actual ")) })
    )
  }
  if (model !== undefined) {
    const bytesPerSymbol = stateBytes(model, config.right)
    if (typeof bytesPerSymbol === "string") {
      return Either.left(new InvalidAgent({ agent: name, field: `agents[${index}].params`, reason: bytesPerSymbol }))
    }
    const horizon = horizonOf(model, config.right)
    if (typeof horizon === "string") return Either.left(new InvalidAgent({ agent: name, field: `agents[${index}].params`, reason: horizon }))
    return Either.right({
      name,
      llm: false,
      actor: (_, seed) => Analyst.make({ name, model, config: config.right, allowShort, ...(seed === undefined ? {} : { seed }) }),
      horizon,
      bytesPerSymbol,
      warmUp: () => warmUpOf(model, config.right)
    })
  }
  const kind = thinker!
  const unsendable = unsendableAnswer(kind)
  if (unsendable !== undefined) return Either.left(new InvalidAgent({ agent: name, field: `agents[${index}].type`, reason: unsendable }))
  const horizon = horizonOf(kind, config.right)
  if (typeof horizon === "string") return Either.left(new InvalidAgent({ agent: name, field: `agents[${index}].params`, reason: horizon }))
  return Either.right({
    name,
    llm: true,
    actor: (llm) => {
      // Run.start gives every run whose roster has an LLM analyst its context; nothing else spawns one.
      if (llm === undefined) throw new Error(`agent ${name} (${kind.type}) needs the run's language-model context`)
      return LlmAnalyst.make({ name, kind, config: config.right, allowShort, ...llm })
    },
    horizon,
    // A brief's bars (at most 200) and its fixed indicators: small beside the 10,000-bar windows above.
    bytesPerSymbol: 0,
    // No opinion before its brief is full and its indicators warm (agents/LlmAnalyst.ts).
    warmUp: () => LlmAnalyst.warmUpOf(config.right)
  })
}

/**
 * The horizon a type gives its opinions under `config`, or why it cannot say one. Its params
 * decoded, but a type's `horizon` is its author's code: one that throws on them (a period its
 * config does not bound, a division it did not guard) is the strategy's problem, refused as its
 * agent's params — not an internal error of whoever validates the strategy.
 */
const horizonOf = (kind: { readonly type: string; readonly horizon: (config: never) => number }, config: unknown): number | string => {
  try {
    return kind.horizon(config as never)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    return `${kind.type} cannot say its opinions' horizon with these params: ${clip(message)}`
  }
}

/**
 * A strategy's roster resolved against `registry`: each agent entry (`analystOf`), then the whole
 * roster's look-back windows over the strategy's symbols (`oversizedRoster`). The first problem is
 * the error.
 */
export const rosterOf = (
  strategy: { readonly agents: ReadonlyArray<AgentConfig>; readonly allowShort: boolean; readonly symbols: ReadonlyArray<string> },
  registry: ReadonlyMap<string, AnyModel> = analysts
): Either.Either<ReadonlyArray<AnalystOf>, InvalidAgent> => {
  const roster: Array<AnalystOf> = []
  for (let i = 0; i < strategy.agents.length; i++) {
    const resolved = analystOf(strategy.agents[i]!, i, strategy.allowShort, registry)
    if (Either.isLeft(resolved)) return Either.left(resolved.left)
    roster.push(resolved.right)
  }
  const oversized = oversizedRoster(roster, strategy.symbols.length)
  return oversized === undefined ? Either.right(roster) : Either.left(oversized)
}

/**
 * The first of a strategy's agent entries that cannot be resolved against `registry` (an unknown
 * type, params its config refuses), or a roster whose look-back windows are too large for its
 * symbols, or undefined: what saving a strategy checks, so that a run of it does not fail to start.
 */
export const invalidAgentOf = (
  strategy: Parameters<typeof rosterOf>[0],
  registry: ReadonlyMap<string, AnyModel> = analysts
): InvalidAgent | undefined => Option.getOrUndefined(Either.getLeft(rosterOf(strategy, registry)))

/** The actor spec of the strategy's `index`-th agent entry, or why there cannot be one. */
export const analystSpec = (
  agent: AgentConfig,
  index: number,
  allowShort: boolean
): Either.Either<AnalystActor, InvalidAgent> => Either.map(analystOf(agent, index, allowShort), (a) => a.actor(undefined))
