/**
 * The shared state of one actor system: where dead letters and lifecycle events go, the registry
 * of live actors, and the defaults every actor inherits.
 */
import type { Clock, Duration, PubSub } from "effect"
import type { ActorId } from "../../../schemas/Actor.js"
import { DeadLetter, type DeadLetterReason, type LifecycleEvent } from "../../../schemas/Lifecycle.js"
import type { CorePolicy } from "../../../supervisors/internal/SupervisorCore.js"
import type { Envelope } from "../Envelope.js"
import type { ActorCell } from "./cell.js"
import { Deadlines } from "./timers.js"

export class SystemState {
  /** Sequence for envelopes sent from outside any actor: increasing in send order. */
  externalSeq = 0
  readonly registry = new Map<string, ActorCell<any, any>>()
  readonly deadLetterCounts: Record<DeadLetterReason, number> = { stopped: 0, overflow: 0, crashed: 0 }
  private spawned = 0
  /** Pending `ask` deadlines, expired by one timer. */
  readonly deadlines: Deadlines

  constructor(
    readonly clock: Clock.Clock,
    readonly askTimeout: Duration.Duration,
    readonly stopTimeout: Duration.Duration,
    readonly deadLetters: PubSub.PubSub<DeadLetter>,
    readonly lifecycle: PubSub.PubSub<LifecycleEvent>,
    /** How an actor supervises the children it spawns (and how the guardian treats top-level actors). */
    readonly childPolicy: CorePolicy,
    private readonly observer?: { readonly lifecycle?: (event: LifecycleEvent) => void; readonly deadLetter?: (letter: DeadLetter) => void }
  ) {
    this.deadlines = new Deadlines(clock)
  }

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  nextName(): string {
    return `$${(this.spawned++).toString(36)}`
  }

  deadLetter(recipient: ActorId, envelope: Envelope, reason: DeadLetterReason, detail?: string): void {
    this.deadLetterCounts[reason]++
    const letter = new DeadLetter(
      { recipient, sender: envelope.sender, message: envelope.message, reason, detail, at: this.now() },
      true
    )
    this.observer?.deadLetter?.(letter)
    this.deadLetters.unsafeOffer(letter)
  }

  publish(event: LifecycleEvent): void {
    this.observer?.lifecycle?.(event)
    this.lifecycle.unsafeOffer(event)
  }
}
