/**
 * The discrete-event world a backtest or replay runs in: the same actors as a paper run, but every
 * fiber they start is scheduled on this world's FIFO scheduler, time is a `VirtualClock`, and
 * randomness is seeded. The driver (the backtest loop, outside the world) runs what is runnable
 * until nothing is — quiescence — and only then moves virtual time to the next bar or timer.
 * Nothing here reads the wall clock, so the same inputs give the same run, byte for byte.
 */
import { Cause, Context, Effect, Exit, Random, Runtime, type Scheduler, Tracer } from "effect"
import { Outside } from "./Outside.js"
import { VirtualClock } from "./VirtualClock.js"

/** FIFO run queue; `drain` runs tasks until none is left (tasks may schedule more). */
class RunQueue implements Scheduler.Scheduler {
  private tasks: Array<Scheduler.Task | undefined> = []
  private head = 0

  scheduleTask(task: Scheduler.Task): void {
    this.tasks.push(task)
  }

  /** A fiber yields after this many operations, so one busy actor cannot starve the others. */
  shouldYield(fiber: { currentOpCount: number }): number | false {
    return fiber.currentOpCount > 2048 ? 0 : false
  }

  drain(): number {
    let ran = 0
    while (this.head < this.tasks.length) {
      const task = this.tasks[this.head]!
      this.tasks[this.head++] = undefined
      task()
      ran++
      if (this.head >= 4096 && this.head * 2 >= this.tasks.length) {
        this.tasks = this.tasks.slice(this.head)
        this.head = 0
      }
    }
    this.tasks = []
    this.head = 0
    return ran
  }
}

export class WorldBlocked extends Error {
  constructor(readonly at: number) {
    super(`the effect is waiting on something that never happens (virtual time ${at}, no timer pending)`)
  }
}

export class World {
  /** Work started outside the world (`Outside`) whose answer has not come back yet. */
  private outsidePending = 0
  private outsideWakers: Array<() => void> = []
  /** Runs effects with this world's scheduler, clock and random generator. */
  readonly runtime: Runtime.Runtime<never>

  private constructor(
    readonly clock: VirtualClock,
    private readonly queue: RunQueue,
    runtime: Runtime.Runtime<never>,
    /** The caller's runtime: real scheduler, real clock. Where `Outside` work runs. */
    private readonly outer: Runtime.Runtime<never>
  ) {
    const outside: Outside["Type"] = { run: (effect) => this.outside(effect) }
    this.runtime = Runtime.make({
      context: Context.add(runtime.context, Outside, outside),
      fiberRefs: runtime.fiberRefs,
      runtimeFlags: runtime.runtimeFlags
    })
  }

  /**
   * Run `effect` on the caller's runtime, in wall-clock time, and resume the world fiber that asked
   * with its result through the world's queue. The driver waits for such work (`awaitOutside`)
   * before it moves virtual time, so an answer from outside lands in the slice that asked for it.
   */
  private outside<A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> {
    return Effect.async<A, E>((resume) => {
      this.outsidePending++
      const fiber = Runtime.runFork(this.outer)(effect)
      fiber.addObserver((exit) => {
        this.outsidePending--
        resume(exit)
        const wakers = this.outsideWakers
        this.outsideWakers = []
        for (const wake of wakers) wake()
      })
      return Effect.sync(() => fiber.unsafeInterruptAsFork(fiber.id()))
    })
  }

  /** Whether work started outside the world is still out. */
  get waitingOutside(): boolean {
    return this.outsidePending > 0
  }

  /**
   * Wait (wall-clock) until no outside work is out, settling the world each time some comes back:
   * the world is then quiescent again, at the same virtual time.
   */
  readonly awaitOutside: Effect.Effect<void> = Effect.suspend(() =>
    Effect.whileLoop({
      while: () => this.outsidePending > 0,
      body: () =>
        Effect.promise(() => new Promise<void>((resolve) => this.outsideWakers.push(resolve))).pipe(
          Effect.andThen(() => this.settle())
        ),
      step: () => undefined
    })
  )

  /**
   * A world starting at virtual time `start` (epoch ms) with randomness seeded by `seed`. The
   * runtime is the caller's (its services and log settings) with the scheduler, clock and random
   * generator swapped, and without the caller's span: a run's agents start their own traces (a
   * span per message under a caller's span would cost every message of a backtest).
   */
  static make(options: { readonly start: number; readonly seed: string | number }): Effect.Effect<World> {
    return Effect.gen(function*() {
      const clock = new VirtualClock(options.start)
      const queue = new RunQueue()
      const runtime = yield* Effect.runtime<never>().pipe(
        Effect.withScheduler(queue),
        Effect.withClock(clock),
        Effect.withRandom(Random.make(options.seed))
      )
      return new World(
        clock,
        queue,
        Runtime.make({
          context: Context.omit(Tracer.ParentSpan)(runtime.context),
          fiberRefs: runtime.fiberRefs,
          runtimeFlags: runtime.runtimeFlags
        }),
        yield* Effect.runtime<never>()
      )
    })
  }

  get now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  /** Run everything runnable until nothing is; virtual time does not move. Returns the tasks run. */
  settle(): number {
    let ran = 0
    // Sleeps of zero (or already due) wake without moving time.
    do ran += this.queue.drain()
    while (this.clock.wakeNext(this.now))
    return ran
  }

  /** Move virtual time to `t`, waking each timer due on the way at its own deadline and settling after each. */
  advanceTo(t: number): void {
    this.settle()
    while (this.clock.wakeNext(t)) this.queue.drain()
    this.settle()
  }

  /**
   * Move virtual time from one timer to the next, waking each at its deadline and settling after
   * each, while `busy()` holds and the next timer is due by `until`.
   */
  advanceWhile(busy: () => boolean, until: number): void {
    this.settle()
    while (busy()) {
      const next = this.clock.nextWakeup
      if (next === undefined || next > until) return
      this.advanceTo(next)
    }
  }

  /** Start `effect` in the world and settle; its exit, or undefined if it is still waiting (on virtual time). */
  start<A, E>(effect: Effect.Effect<A, E>): { readonly poll: () => Exit.Exit<A, E> | undefined } {
    const fiber = Runtime.runFork(this.runtime)(effect, { immediate: false })
    this.settle()
    return { poll: () => fiber.unsafePoll() ?? undefined }
  }

  /**
   * Run `effect` in the world to completion, moving virtual time forward (to at most `until`) while
   * it waits on timers. Throws `WorldBlocked` if it waits on something no timer will bring.
   */
  run<A, E>(effect: Effect.Effect<A, E>, until = Infinity): Exit.Exit<A, E> {
    const running = this.start(effect)
    let exit = running.poll()
    while (exit === undefined) {
      const next = this.clock.nextWakeup
      if (next === undefined || next > until) throw new WorldBlocked(this.now)
      this.advanceTo(next)
      exit = running.poll()
    }
    return exit
  }

  /** `run`, returning the value or throwing the failure as a defect (for drivers that cannot recover). */
  runOrThrow<A, E>(effect: Effect.Effect<A, E>, until = Infinity): A {
    const exit = this.run(effect, until)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }
}
