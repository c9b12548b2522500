/**
 * The context a behavior gets. One small object per actor whose methods live on the prototype:
 * an idle actor must not carry a dozen closures.
 */
import { Effect, Exit } from "effect"
import { type OverflowPolicy, Terminated } from "../../../schemas/Actor.js"
import type { ActorRef, AnyActorRef } from "../ActorRef.js"
import type { ActorContext, ActorSpec, Replier, SpawnOptions, Timer } from "../Behavior.js"
import { tagOf } from "../Envelope.js"
import type { ActorCell } from "./cell.js"

type TerminatedMapper = ((terminated: Terminated) => unknown) | undefined

export class CellContext<M> {
  constructor(private readonly cell: ActorCell<M, any>) {}

  get self(): ActorRef<M> {
    return this.cell.ref
  }

  get id() {
    return this.cell.id
  }

  get incarnation(): number {
    return this.cell.incarnation
  }

  get sender() {
    return this.cell.current?.sender
  }

  get seq(): number {
    return this.cell.current?.seq ?? -1
  }

  get trace() {
    return this.cell.trace
  }

  spawn<M2, S2, R2, P2 extends OverflowPolicy>(spec: ActorSpec<M2, S2, R2, P2>, options?: SpawnOptions) {
    const cell = this.cell
    return Effect.flatMap(Effect.runtime<never>(), (runtime) => cell.spawnChild(spec, options, runtime))
  }

  watch(ref: AnyActorRef, map?: TerminatedMapper): Effect.Effect<void> {
    const cell = this.cell
    return Effect.sync(() => {
      const target = ref.cell
      if (target === cell) return
      if (target.status === "stopped") {
        const terminated = new Terminated({ actor: target.id, reason: target.terminationReason ?? "stopped" }, true)
        cell.deliverSystem(map === undefined ? terminated : map(terminated), target.id)
        return
      }
      ;(target.watchers ??= new Map()).set(cell, map)
      ;(cell.watching ??= new Set()).add(target)
    })
  }

  unwatch(ref: AnyActorRef): Effect.Effect<void> {
    const cell = this.cell
    return Effect.sync(() => {
      ref.cell.watchers?.delete(cell)
      cell.watching?.delete(ref.cell)
    })
  }

  schedule(message: M, delay: Parameters<typeof Effect.sleep>[0]): Effect.Effect<Timer> {
    const tell = Effect.ignore(this.cell.ref.tell(message))
    return this.cell.forkTimer(Effect.zipRight(Effect.sleep(delay), tell))
  }

  scheduleRepeatedly(message: M, interval: Parameters<typeof Effect.sleep>[0]): Effect.Effect<Timer> {
    const tell = Effect.ignore(this.cell.ref.tell(message))
    return this.cell.forkTimer(Effect.forever(Effect.zipRight(Effect.sleep(interval), tell)))
  }

  get stop(): Effect.Effect<void> {
    const cell = this.cell
    return Effect.sync(() => cell.requestStop())
  }

  reply(request: unknown, value: unknown): Effect.Effect<void> {
    return this.answerCurrent(request, Exit.succeed(value))
  }

  fail(request: unknown, error: unknown): Effect.Effect<void> {
    return this.answerCurrent(request, Exit.fail(error))
  }

  respond<R>(request: unknown, effect: Effect.Effect<unknown, unknown, R>): Effect.Effect<void, never, R> {
    return Effect.matchEffect(effect, {
      onFailure: (error) => this.answerCurrent(request, Exit.fail(error)),
      onSuccess: (value) => this.answerCurrent(request, Exit.succeed(value))
    })
  }

  replyLater(request: unknown): Replier<any, any> {
    const cell = this.cell
    const envelope = cell.current
    if (envelope === undefined || envelope.message !== request) {
      throw new Error(`${cell.id}: replyLater(${tagOf(request)}) outside the handling of that message`)
    }
    envelope.answered = true
    const complete = (exit: Exit.Exit<any, any>) => Effect.sync(() => cell.answer(envelope, exit))
    return {
      succeed: (value) => complete(Exit.succeed(value)),
      fail: (error) => complete(Exit.fail(error)),
      complete
    }
  }

  private answerCurrent(request: unknown, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    const cell = this.cell
    return Effect.suspend(() => {
      const envelope = cell.current
      if (envelope === undefined || envelope.message !== request) {
        return Effect.dieMessage(`${cell.id}: ${tagOf(request)} is not the message being handled; use replyLater`)
      }
      cell.answer(envelope, exit)
      return Effect.void
    })
  }
}

/** The class implements the interface's generic signatures; TypeScript cannot check that through `implements`. */
export const makeContext = <M>(cell: ActorCell<M, any>): ActorContext<M> => new CellContext(cell) as unknown as ActorContext<M>


