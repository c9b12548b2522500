/**
 * What a run's agents went through, told per agent: how often each crashed and was restarted, with
 * the first line of its last crash's cause, and what each LLM agent's model calls cost. Tallied from
 * the run's events — as they happen (a backtest's summary), or kept by the recorder in the
 * `agent_restarts` and `llm_usage` tables (src/store/RunRecorder.ts), so that `runs show` reads a
 * row per agent rather than every event of a run of millions.
 */
import type { AgentRestarts } from "../../schemas/Rpc.js"
import type { Strategy } from "../../schemas/Strategy.js"

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
