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

export interface Node {
  readonly id: ActorId
  readonly name: string
  readonly restartType: RestartType
  status: NodeStatus
  incarnation: number
  /** Supervisor bookkeeping: when the current incarnation started, its backoff state and attempt. */
  startedAt: number
  backoffState: unknown
  attempt: number
  /** Restart times within the period, when the supervisor counts intensity per child. */
  restarts: Array<number>
  /** Start a new incarnation (a restart when `restart` is given). */
  start(restart?: RestartInfo): Effect.Effect<void>
  /** End the current incarnation gracefully (children first stopped or halted); identity and mailbox stay. */
  halt(): Effect.Effect<void>
  /** Stop for good after `halt`: close the mailbox into dead letters, notify watchers, publish. */
  terminate(reason: TerminationReason): Effect.Effect<void>
}
