/**
 * A bounded mailbox: a ring buffer that grows on demand up to its capacity (an idle actor holds
 * only a few slots), with a per-actor overflow policy.
 *
 * It is deliberately synchronous: senders and the actor's fiber call it from inside their own
 * effects, so a `tell` costs an array write (and, for an idle actor, starting its drain).
 */
import type { OverflowPolicy } from "../../schemas/Actor.js"
import type { Envelope } from "./Envelope.js"

export const enum Offer {
  Accepted = 0,
  /** Policy `fail`: refused, the caller dead-letters it and fails the sender. */
  Refused = 1,
  /** Policy `backpressure`: the caller must wait with `enqueueWaiter`. */
  MustWait = 2,
  /** The mailbox is closed: the actor stopped for good. */
  Closed = 3
}

interface Waiter {
  readonly envelope: Envelope
  readonly admitted: () => void
}

const INITIAL_SLOTS = 8

export class Mailbox {
  private buffer: Array<Envelope | undefined>
  private head = 0
  private length = 0
  private waiters: Array<Waiter> | undefined = undefined
  closed = false

  constructor(
    readonly capacity: number,
    readonly policy: OverflowPolicy,
    /** Receives every envelope that `dropOldest` pushes out. */
    private readonly onDropped: (envelope: Envelope) => void
  ) {
    this.buffer = new Array(Math.min(INITIAL_SLOTS, capacity))
  }

  get size(): number {
    return this.length
  }

  offer(envelope: Envelope): Offer {
    if (this.closed) return Offer.Closed
    if (this.length >= this.capacity || (this.waiters !== undefined && this.waiters.length > 0)) {
      switch (this.policy) {
        case "fail":
          return Offer.Refused
        case "backpressure":
          return Offer.MustWait
        case "dropOldest":
          this.onDropped(this.shift()!)
          break
      }
    }
    this.push(envelope)
    return Offer.Accepted
  }

  /** System messages (`Terminated`, escalations) are never refused while the mailbox is open. */
  offerSystem(envelope: Envelope): boolean {
    if (this.closed) return false
    this.push(envelope)
    return true
  }

  /** Queue a sender behind a full `backpressure` mailbox; `admitted` runs when its envelope is in. */
  enqueueWaiter(envelope: Envelope, admitted: () => void): Waiter {
    const waiter: Waiter = { envelope, admitted }
    ;(this.waiters ??= []).push(waiter)
    return waiter
  }

  /** An interrupted sender withdraws; returns false if it was already admitted. */
  removeWaiter(waiter: Waiter): boolean {
    if (this.waiters === undefined) return false
    const i = this.waiters.indexOf(waiter)
    if (i < 0) return false
    this.waiters.splice(i, 1)
    return true
  }

  /** The next envelope, or undefined when empty. Admits one waiting sender per slot freed. */
  poll(): Envelope | undefined {
    if (this.length === 0) return undefined
    const envelope = this.shift()
    if (this.waiters !== undefined && this.waiters.length > 0 && this.length < this.capacity) {
      const waiter = this.waiters.shift()!
      this.push(waiter.envelope)
      waiter.admitted()
    }
    return envelope
  }

  /** Close for good and hand back everything still queued or waiting, oldest first. */
  close(): Array<Envelope> {
    this.closed = true
    const rest: Array<Envelope> = []
    while (this.length > 0) rest.push(this.shift()!)
    const waiters = this.waiters ?? []
    this.waiters = undefined
    for (const waiter of waiters) {
      rest.push(waiter.envelope)
      waiter.admitted()
    }
    this.buffer = []
    return rest
  }

  private push(envelope: Envelope): void {
    if (this.length === this.buffer.length) this.grow()
    this.buffer[(this.head + this.length) % this.buffer.length] = envelope
    this.length++
  }

  private shift(): Envelope | undefined {
    const envelope = this.buffer[this.head]
    this.buffer[this.head] = undefined
    this.head = (this.head + 1) % this.buffer.length
    this.length--
    return envelope
  }

  private grow(): void {
    // System messages may push past capacity, so the ring can outgrow it by a little.
    const next = new Array<Envelope | undefined>(Math.max(INITIAL_SLOTS, this.buffer.length * 2))
    for (let i = 0; i < this.length; i++) next[i] = this.buffer[(this.head + i) % this.buffer.length]
    this.buffer = next
    this.head = 0
  }
}
