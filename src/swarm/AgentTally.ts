/**
 * What a run's agents went through, told per agent: how often each crashed and was restarted, with
 * the first line of its last crash's cause, and what each LLM agent's model calls cost. Tallied from
 * the run's events — as they happen (a backtest's summary), or kept by the recorder in the
 * `agent_restarts` and `llm_usage` tables (src/store/RunRecorder.ts), so that `runs show` reads a
 * row per agent rather than every event of a run of millions.
 */
import type { LlmCall, LlmConfig } from "../../schemas/Llm.js"
import type { AgentRestarts, LlmCallTotals, LlmUsage } from "../../schemas/Rpc.js"
import type { Strategy } from "../../schemas/Strategy.js"
import { spendsBudget } from "../llm/Budget.js"

/** The most characters (code points) of a crash's cause kept: its first line, which is what an operator reads. */
export const CAUSE_CHARS = 300

/**
 * The first line of a crash's cause, at most `CAUSE_CHARS` code points, NUL (which a text column
 * cannot hold) shown as U+FFFD: what is stored and shown of it.
 */
export const causeLine = (cause: string): string => {
  const line = cause.split("\n", 1)[0]!.replace(/\u0000/g, "\uFFFD")
  const points = Array.from(line)
  return points.length <= CAUSE_CHARS ? line : `${points.slice(0, CAUSE_CHARS - 1).join("")}…`
}

/** An agent's crashes and restarts, by its actor (`/user/run/analysts/analyst-2`). */
export interface RestartTally {
  readonly actor: string
  readonly crashes: number
  readonly restarts: number
  /** The last crash's event and its cause's first line (`causeLine`); null before any crash. */
  readonly lastSeq: number | null
  readonly lastCause: string | null
}

/**
 * The agents' tallies as `runs show` reports them: named as the strategy names them (an analyst
 * by its name, with its type; a spine agent — risk, ledger, desk, coordinator — by its role),
 * those restarted most first.
 */
export const restartsOf = (tallies: ReadonlyArray<RestartTally>, strategy: Pick<Strategy, "agents">): Array<AgentRestarts> =>
  tallies
    .filter((t) => t.crashes > 0 || t.restarts > 0)
    .map((t): AgentRestarts => {
      const name = t.actor.slice(t.actor.lastIndexOf("/") + 1)
      const analyst = t.actor.includes("/analysts/")
        ? strategy.agents.find((agent) => (agent.name ?? agent.type) === name)
        : undefined
      return {
        agent: name,
        actor: t.actor,
        type: analyst === undefined ? null : analyst.type,
        restarts: t.restarts,
        crashes: t.crashes,
        lastCause: t.lastCause,
        lastCrashSeq: t.lastSeq
      }
    })
    .sort((a, b) => b.restarts - a.restarts || b.crashes - a.crashes || (a.actor < b.actor ? -1 : a.actor > b.actor ? 1 : 0))

/** Tallies restarts from lifecycle events, as they come (a backtest's summary). */
export class RestartCounter {
  private readonly byActor = new Map<string, { crashes: number; restarts: number; lastSeq: number | null; lastCause: string | null }>()

  crashed(actor: string, seq: number, cause: string): void {
    const t = this.entry(actor)
    t.crashes++
    t.lastSeq = seq
    t.lastCause = causeLine(cause)
  }

  restarted(actor: string): void {
    this.entry(actor).restarts++
  }

  tallies(): Array<RestartTally> {
    return [...this.byActor].map(([actor, t]) => ({ actor, ...t }))
  }

  private entry(actor: string) {
    let t = this.byActor.get(actor)
    if (t === undefined) this.byActor.set(actor, (t = { crashes: 0, restarts: 0, lastSeq: null, lastCause: null }))
    return t
  }
}

/** A model call's cost in billionths of the strategy's currency: summed exactly, in any order. */
export const costNanos = (cost: number | undefined): number => Math.round((cost ?? 0) * 1e9)

/** What an agent's model calls of one backend and model added up to: a `llm_usage` row. */
export interface LlmTally {
  readonly agent: string
  readonly backend: string
  readonly model: string
  readonly calls: number
  readonly cacheHits: number
  readonly refused: number
  readonly failed: number
  /** Calls refused because the budget was spent (not for one prompt too large for what was left). */
  readonly budgetSpent: number
  readonly tokensIn: number
  readonly tokensOut: number
  readonly costNanos: number
}

/** One call's tally: what its `LlmCalled` adds to its agent's row. */
export const llmTallyOf = (c: LlmCall): LlmTally => {
  const refused = c.outcome === "budget"
  return {
    agent: c.agent,
    backend: c.backend,
    model: c.model,
    calls: 1,
    cacheHits: c.cache === "hit" ? 1 : 0,
    refused: refused ? 1 : 0,
    failed: refused || c.outcome === "ok" ? 0 : 1,
    budgetSpent: refused && spendsBudget(c.error) ? 1 : 0,
    tokensIn: c.tokensIn,
    tokensOut: c.tokensOut,
    costNanos: costNanos(c.cost)
  }
}

const sumTallies = (of: ReadonlyArray<LlmTally>): LlmCallTotals => {
  const sum = (f: (t: LlmTally) => number) => of.reduce((n, t) => n + f(t), 0)
  return {
    calls: sum((t) => t.calls),
    cacheHits: sum((t) => t.cacheHits),
    refused: sum((t) => t.refused),
    failed: sum((t) => t.failed),
    tokensIn: sum((t) => t.tokensIn),
    tokensOut: sum((t) => t.tokensOut),
    // Summed in billionths, exactly: the same figure however the rows were added up.
    cost: sum((t) => t.costNanos) / 1e9
  }
}

/**
 * What a run's LLM agents used, as `runs show` and a backtest's summary report it: the language
 * model its `RunStarted` named, the calls of every agent (rows sorted by agent, backend, model)
 * and the budget spent of the strategy's limits.
 */
export const llmUsageOf = (
  started: { readonly backend: string; readonly model: string; readonly description: string },
  tallies: ReadonlyArray<LlmTally>,
  budget: LlmConfig["budget"]
): LlmUsage => {
  const all = sumTallies(tallies)
  return {
    backend: started.backend,
    model: started.model,
    description: started.description,
    ...all,
    budget: {
      tokens: all.tokensIn + all.tokensOut,
      maxTokens: budget.tokens,
      cost: all.cost,
      maxCost: budget.maxCost ?? null,
      exhausted: tallies.some((t) => t.budgetSpent > 0)
    },
    agents: tallies.map((t) => ({ agent: t.agent, backend: t.backend, model: t.model, ...sumTallies([t]) }))
  }
}

const byKey = (a: LlmTally, b: LlmTally): number =>
  a.agent !== b.agent ? (a.agent < b.agent ? -1 : 1) : a.backend !== b.backend ? (a.backend < b.backend ? -1 : 1) : a.model < b.model ? -1 : a.model > b.model ? 1 : 0

/** Tallies model calls from `LlmCalled` events, as they come (a backtest's summary), one row per agent, backend and model. */
export class LlmCounter {
  private readonly rows = new Map<string, Map<string, Map<string, { -readonly [K in keyof LlmTally]: LlmTally[K] }>>>()

  called(call: LlmCall): void {
    let byBackend = this.rows.get(call.agent)
    if (byBackend === undefined) this.rows.set(call.agent, (byBackend = new Map()))
    let byModel = byBackend.get(call.backend)
    if (byModel === undefined) byBackend.set(call.backend, (byModel = new Map()))
    const row = byModel.get(call.model)
    const t = llmTallyOf(call)
    if (row === undefined) {
      byModel.set(call.model, { ...t })
      return
    }
    row.calls += t.calls
    row.cacheHits += t.cacheHits
    row.refused += t.refused
    row.failed += t.failed
    row.budgetSpent += t.budgetSpent
    row.tokensIn += t.tokensIn
    row.tokensOut += t.tokensOut
    row.costNanos += t.costNanos
  }

  /** The rows, by agent, backend and model (as `llm_usage` is read). */
  tallies(): Array<LlmTally> {
    return [...this.rows.values()].flatMap((byBackend) => [...byBackend.values()].flatMap((byModel) => [...byModel.values()])).sort(byKey)
  }
}
