/**
 * The strategy: one schema with a default for every field but its name, symbols and roster, decoded
 * from JSON or YAML files and from the RPC edge. Decoding errors name the field
 * (`risk.limits.maxPositionPct`, `agents[2].weight`). A run records the exact strategy it ran.
 */
import { Schema } from "effect"
import { adaptiveWeightsProblem, ConsensusConfig } from "./Decision.js"
import { ExecutionConfig, MoneyAmount, SizingConfig } from "./Execution.js"
import { Symbol } from "./Ids.js"
import { LlmConfig } from "./Llm.js"
import { MetricsConfig } from "./Metrics.js"
import type { Money } from "./Money.js"
import { ApprovalConfig, looserLimits, RiskLimits } from "./Risk.js"
import { givenRuleProblem, RuleSet } from "./Rule.js"
import { visibleTextProblem } from "./VisibleText.js"

const Name = Schema.String.pipe(
  Schema.trimmed({ message: () => "no leading or trailing spaces" }),
  // Names are printed to terminals (summaries, tables, `runs watch`): an ESC in one was a terminal escape.
  Schema.pattern(/^\P{Cc}*$/u, { message: () => "no control characters (line breaks, tabs, escapes)" }),
  // Nor one that reorders what a terminal shows after it (a right-to-left override spoofing a name).
  Schema.pattern(/^[^\u202a-\u202e\u2066-\u2069]*$/u, {
    message: () => "no bidirectional formatting characters (U+202A to U+202E, U+2066 to U+2069): they reorder the text shown after them"
  }),
  Schema.minLength(1, { message: () => "must not be empty" }),
  Schema.maxLength(100, { message: () => "at most 100 characters" }),
  // Every command takes a strategy by id or by name: a name of an id's form would be another
  // strategy's id, and the commands given it would act on that strategy.
  Schema.filter((name) => !/^str_[0-9a-f]{12}$/.test(name), {
    message: () => "cannot have a strategy id's form (str_ and 12 hexadecimal digits): commands take a strategy by id or by name"
  })
)

/** One analyst (or other agent) of the roster: its registered type, its name in the run, its vote weight and parameters. */
export const AgentConfig = Schema.Struct({
  /** A name from the agent registry (`sma_crossover`, `rsi_reversion`, …). */
  type: Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_]{0,63}$/, { message: () => "an agent type is lower_snake_case" })),
  /** The agent's name in the run (default: its type); unique within the roster. */
  name: Schema.optional(
    Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9_-]{0,63}$/, { message: () => "an agent name is lowercase letters, digits, - and _" }))
  ),
  weight: Schema.optionalWith(
    Schema.Number.pipe(Schema.finite(), Schema.between(0, 1_000, { message: () => "a weight is between 0 and 1000" })),
    { default: () => 1, exact: true }
  ),
  /** Checked against the agent type's own config schema when the run is assembled. */
  params: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { default: () => ({}), exact: true })
}).annotations({ identifier: "AgentConfig", parseOptions: { onExcessProperty: "error" } })
export type AgentConfig = typeof AgentConfig.Type

/**
 * The most a strategy may start with: 1,000,000,000 units of its currency, a ninth of what Money
 * holds exactly (2⁵³−1 micros ≈ 9,007,199,254.74: schemas/Money.ts). The books need the rest:
 * gains raise equity, and a short sale's proceeds raise cash. Should a run still reach the end of
 * the range, an order that would take cash past it is cut down or refused by the `money_range`
 * gate, and marks that take equity past it stop the run, saying so (agents/Ledger.ts).
 */
export const MAX_INITIAL_CASH = 1_000_000_000_000_000 as Money

export const RiskConfig = Schema.Struct({
  limits: Schema.optionalWith(RiskLimits, { default: () => Schema.decodeSync(RiskLimits)({}), exact: true }),
  approval: Schema.optionalWith(ApprovalConfig, { default: () => Schema.decodeSync(ApprovalConfig)({}), exact: true })
}).annotations({ identifier: "RiskConfig", parseOptions: { onExcessProperty: "error" } })

export const Strategy = Schema.Struct({
  name: Name,
  description: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(2_000)), { default: () => "", exact: true }),
  symbols: Schema.Array(Symbol).pipe(
    Schema.minItems(1, { message: () => "a strategy trades at least one symbol" }),
    Schema.maxItems(1_000, { message: () => "at most 1000 symbols" })
  ),
  /** Greater than 0; a strategy given now starts with at most `MAX_INITIAL_CASH` (1,000,000,000: `givenProblem`). */
  initialCash: Schema.optionalWith(
    MoneyAmount.pipe(Schema.filter((micros) => micros > 0 || "initial cash must be greater than 0")),
    { default: () => Schema.decodeSync(MoneyAmount)("100000"), exact: true }
  ),
  /** Shorting, for the whole strategy: analysts may say short, sizing targets shorts, gates allow them. */
  allowShort: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true }),
  agents: Schema.Array(AgentConfig).pipe(
    Schema.minItems(1, { message: () => "a strategy needs at least one agent" }),
    Schema.maxItems(100, { message: () => "at most 100 agents" })
  ),
  consensus: Schema.optionalWith(ConsensusConfig, { default: () => Schema.decodeSync(ConsensusConfig)({}), exact: true }),
  sizing: Schema.optionalWith(SizingConfig, { default: () => Schema.decodeSync(SizingConfig)({}), exact: true }),
  execution: Schema.optionalWith(ExecutionConfig, { default: () => Schema.decodeSync(ExecutionConfig)({}), exact: true }),
  risk: Schema.optionalWith(RiskConfig, { default: () => Schema.decodeSync(RiskConfig)({}), exact: true }),
  rules: Schema.optionalWith(RuleSet, { default: () => [], exact: true }),
  metrics: Schema.optionalWith(MetricsConfig, { default: () => Schema.decodeSync(MetricsConfig)({}), exact: true }),
  /** Language models for LLM agents (absent: the defaults of `LlmConfig`); kept out of strategies without it. */
  llm: Schema.optionalWith(LlmConfig, { exact: true })
}).pipe(
  Schema.filter((strategy) => {
    const symbols = new Set<string>()
    for (let i = 0; i < strategy.symbols.length; i++) {
      if (symbols.has(strategy.symbols[i]!)) return { path: ["symbols", i], message: `duplicate symbol "${strategy.symbols[i]}"` }
      symbols.add(strategy.symbols[i]!)
    }
    const names = new Set<string>()
    for (let i = 0; i < strategy.agents.length; i++) {
      const name = strategy.agents[i]!.name ?? strategy.agents[i]!.type
      if (names.has(name)) {
        return { path: ["agents", i, "name"], message: `two agents are named "${name}"; give one a distinct name` }
      }
      names.add(name)
    }
    // A weight of 0 is an observer (its opinions recorded, never counted); all of them, and no round ever decides.
    if (strategy.agents.every((agent) => agent.weight === 0)) {
      return { path: ["agents"], message: "every agent has weight 0, so no vote would ever count: give one a positive weight" }
    }
    if (strategy.sizing.allowShort && !strategy.allowShort) {
      return { path: ["sizing", "allowShort"], message: "shorting is a strategy-wide setting: set allowShort at the top level" }
    }
    return undefined
  }),
  Schema.annotations({ identifier: "Strategy", parseOptions: { onExcessProperty: "error" } })
)
export type Strategy = typeof Strategy.Type
export type StrategyEncoded = typeof Strategy.Encoded

/** Why a strategy given now is refused: the path of the field and the reason. */
export interface GivenProblem {
  readonly path: ReadonlyArray<string | number>
  readonly reason: string
}

/**
 * The first problem of a strategy given now — a file, `strategies.create|update` — that the schema
 * does not check, or undefined: settings accepted once and refused since (initial cash above
 * `MAX_INITIAL_CASH`, an adaptive-weight floor above its ceiling, risk limits looser than a hard
 * gate, a rule scoped to a symbol the strategy does not trade, a rule's id or name with a control
 * character, a name with an invisible format character or not in NFC form — `visibleTextProblem`:
 * two strategies named alike in `strategies list` were two strategies). They stay out of the
 * schema so that strategies stored before keep decoding and resolving by name, and their runs
 * stay readable and replayable; each input edge asks this instead (`rules.put` asks
 * `givenRuleProblem` of the rule it is given).
 */
export const givenProblem = (strategy: Strategy): GivenProblem | undefined => {
  const name = visibleTextProblem(strategy.name)
  if (name !== undefined) return { path: ["name"], reason: name }
  if (strategy.initialCash > MAX_INITIAL_CASH) {
    return {
      path: ["initialCash"],
      reason: "initial cash must be at most 1000000000: the books hold at most 9007199254.740991 exactly, and need the rest for gains and short sales' proceeds"
    }
  }
  const adaptive = adaptiveWeightsProblem(strategy.consensus.adaptiveWeights)
  if (adaptive !== undefined) return { path: ["consensus", "adaptiveWeights", adaptive.field], reason: adaptive.reason }
  const looser = looserLimits(strategy.risk.limits)
  if (looser !== undefined) return { path: ["risk", "limits", looser.field], reason: looser.reason }
  for (let i = 0; i < strategy.rules.length; i++) {
    const problem = givenRuleProblem(strategy.rules[i]!, strategy.symbols)
    if (problem !== undefined) return { path: ["rules", i, ...problem.path], reason: problem.reason }
  }
  return undefined
}

/** An agent's name in the run. */
export const agentName = (agent: AgentConfig): string => agent.name ?? agent.type
