/**
 * What a supervisor manages: an actor cell or a nested supervisor. Both keep their identity
 * across restarts; a restart is `halt` then `start`, a final stop is `halt` then `terminate`.
 */
import type { Effect } from "effect"
import type { ActorId, TerminationReason } from "../../../schemas/Actor.js"
import type { RestartType } from "../../../schemas/Supervision.js"

export type NodeStatus = "running" | "restarting" | "stopping" | "stopped"

export interface RestartInfo {
  readonly attempt: number
  readonly delayMillis: number
}

/** The supervisor's bookkeeping on a child, shared by actor cells and nested supervisors. */
export abstract class Supervised {
  status: NodeStatus = "running"
  incarnation = 0
  /** When the current incarnation started: a child that ran a whole period gets a fresh backoff. */
  startedAt = 0
  backoffState: unknown = undefined
  attempt = 0
  /** Restart times within the period, when the supervisor counts intensity per child. */
  restarts: Array<number> = []
  /**
   * Whether the current incarnation has handled a message (its behavior returned) — one its spec's
   * `progress` calls progress, when it has one (an analyst: past its warm-up). An actor cell
   * sets it; a nested supervisor, which handles none, when it gives up: whether a child of its own
   * that failed had handled one first (`SupervisorCore.progressed`).
   */
  progressed = false
  /** Restarts in a row with no message handled in between (the `maxConsecutiveRestarts` limit). */
  consecutive = 0
  /** For a supervisor that gave up: the actor whose failures made it (the start of the escalation). */
  origin: ActorId | undefined = undefined
}

export interface Node extends Supervised {
  readonly id: ActorId
  readonly name: string
  readonly restartType: RestartType
  /** Start a new incarnation (a restart when `restart` is given). */
  start(restart?: RestartInfo): Effect.Effect<void>
  /** End the current incarnation gracefully (children first stopped or halted); identity and mailbox stay. */
  halt(): Effect.Effect<void>
  /** Stop for good after `halt`: close the mailbox into dead letters, notify watchers, publish. */
  terminate(reason: TerminationReason): Effect.Effect<void>
}
