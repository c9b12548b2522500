/**
 * The supervised demo `npm start` runs until the trading swarm lands: a small trading desk whose
 * actors exchange typed messages under one `one_for_one` supervisor, one of them crashing and being
 * restarted with backoff, with every lifecycle event and dead letter printed as it happens.
 */
import { Deferred, Effect, Metric, Ref, Stream } from "effect"
import type { ActorRef } from "../actor/ActorRef.js"
import * as ActorSystem from "../actor/ActorSystem.js"
import { tagOf } from "../actor/Envelope.js"
import { DeadLetter, type LifecycleEvent } from "../../schemas/Lifecycle.js"
import * as Supervisor from "../../supervisors/Supervisor.js"
import * as Analyst from "./Analyst.js"
import * as Coordinator from "./Coordinator.js"
import * as MarketFeed from "./MarketFeed.js"
import { counted, messagesHandled } from "./Metrics.js"
import { Narrator } from "./Narrator.js"
import { type CoordinatorMessage, GetSummary } from "./protocol.js"

const DESK = "desk"
const TICKS = 10
const TICK_MILLIS = 150
const CRASH_EVERY = 3
const INTENSITY = 5
const PERIOD_SECONDS = 10
const BACKOFF = { _tag: "exponential", baseMillis: 10, factor: 2, maxMillis: 1_000 } as const

interface Wiring {
  readonly coordinator: ActorRef<CoordinatorMessage, "dropOldest">
  readonly panel: ReadonlyArray<Coordinator.Panelist>
}

interface Tally {
  readonly crashes: number
  readonly restarts: number
  readonly escalations: number
}

const ordinal = (n: number) =>
  `${n}${n % 100 >= 11 && n % 100 <= 13 ? "th" : n % 10 === 1 ? "st" : n % 10 === 2 ? "nd" : n % 10 === 3 ? "rd" : "th"}`

/** The last segment of an actor path: `/user/desk/flaky` → `flaky`. */
const nameOf = (id: string) => id.slice(id.lastIndexOf("/") + 1)

const narrate = (event: LifecycleEvent | DeadLetter) =>
  Effect.flatMap(Narrator, (narrator) => {
    const at = { at: event.at }
    if (event instanceof DeadLetter) {
      return narrator.line(
        nameOf(event.recipient),
        `✉ dead letter: ${tagOf(event.message)} from ${event.sender === undefined ? "outside" : nameOf(event.sender)}` +
          ` (${event.reason === "crashed" ? "crashed while handling it" : event.detail === undefined ? event.reason : `${event.reason}: ${event.detail}`})`,
        { ...at, tone: "note" }
      )
    }
    switch (event._tag) {
      case "ActorStarted":
        return narrator.line(nameOf(event.actor), "▶ started", { ...at, tone: "dim" })
      case "ActorCrashed":
        return narrator.line(
          nameOf(event.actor),
          `✗ crashed${event.message === undefined ? "" : ` on ${event.message}`}: ${event.cause}`,
          { ...at, tone: "bad" }
        )
      case "ActorRestarted":
        return narrator.line(
          nameOf(event.actor),
          `↻ restarted (attempt ${event.attempt}, after ${event.delayMillis}ms)`,
          { ...at, tone: "good" }
        )
      case "ActorStopped":
        return narrator.line(nameOf(event.actor), `■ stopped${event.reason === "stopped" ? "" : ` (${event.reason})`}`, {
          ...at,
          tone: event.reason === "stopped" ? "dim" : "bad"
        })
      case "SupervisorEscalated":
        return narrator.line(
          nameOf(event.supervisor),
          `⚠ gave up on ${nameOf(event.child)} after ${event.restarts} restarts within ${event.periodMillis}ms: ${event.cause}`,
          { ...at, tone: "bad" }
        )
    }
  })

const count = (tally: Ref.Ref<Tally>, event: LifecycleEvent | DeadLetter) =>
  Ref.update(tally, (t) =>
    event instanceof DeadLetter
      ? t
      : event._tag === "ActorCrashed"
      ? { ...t, crashes: t.crashes + 1 }
      : event._tag === "ActorRestarted"
      ? { ...t, restarts: t.restarts + 1 }
      : event._tag === "SupervisorEscalated"
      ? { ...t, escalations: t.escalations + 1 }
      : t)

const header = Effect.flatMap(Narrator, (narrator) =>
  Effect.forEach(
    [
      `Swarm demo: a supervised mini trading desk (Ctrl-C stops it early)`,
      ``,
      `  ${DESK}  supervisor, one_for_one, at most ${INTENSITY} restarts in ${PERIOD_SECONDS}s, backoff ${BACKOFF.baseMillis}ms ×${BACKOFF.factor} up to ${BACKOFF.maxMillis}ms`,
      `  ├─ momentum     analyst: follows the last move`,
      `  ├─ contrarian   analyst: bets on a return to the mean`,
      `  ├─ flaky        analyst: momentum, but crashes on every ${ordinal(CRASH_EVERY)} opinion`,
      `  ├─ coordinator  asks every analyst each round (ask), votes by confidence`,
      `  └─ feed         ${TICKS} seeded random-walk prices, one every ${TICK_MILLIS}ms (tell); transient`,
      ``
    ],
    (line) => narrator.raw(line),
    { discard: true }
  ))

export const program = Effect.gen(function*() {
  const system = yield* ActorSystem.ActorSystem
  const narrator = yield* Narrator
  yield* header

  // Subscribe before anything starts, so no event is missed. The desk's own stop is the last event
  // of the demo: once it is printed, so is everything before it.
  const tally = yield* Ref.make<Tally>({ crashes: 0, restarts: 0, escalations: 0 })
  const deskStopped = yield* Deferred.make<void>()
  const isDeskStop = (event: LifecycleEvent | DeadLetter) =>
    !(event instanceof DeadLetter) && event._tag === "ActorStopped" && event.actor === `/user/${DESK}`
  yield* Stream.merge(yield* system.lifecycle, yield* system.deadLetters).pipe(
    Stream.runForEach((event) =>
      narrate(event).pipe(
        Effect.zipRight(count(tally, event)),
        Effect.zipRight(isDeskStop(event) ? Deferred.succeed(deskStopped, undefined) : Effect.void)
      )
    ),
    Effect.forkScoped
  )

  // Children are specs; their refs exist once the supervisor has started them, so the coordinator
  // and the feed are handed an effect that resolves once the tree is wired.
  const wiring = yield* Deferred.make<Wiring>()
  const desk = yield* Supervisor.start({
    strategy: "one_for_one",
    intensity: INTENSITY,
    period: `${PERIOD_SECONDS} seconds`,
    backoff: BACKOFF,
    children: [
      Supervisor.worker("momentum", counted(Analyst.make({ stance: "momentum" }))),
      Supervisor.worker("contrarian", counted(Analyst.make({ stance: "contrarian" }))),
      Supervisor.worker("flaky", counted(Analyst.make({ stance: "momentum", crashEvery: CRASH_EVERY }))),
      Supervisor.worker("coordinator", counted(Coordinator.make(Effect.map(Deferred.await(wiring), (w) => w.panel)))),
      Supervisor.worker(
        "feed",
        counted(MarketFeed.make({
          coordinator: Effect.map(Deferred.await(wiring), (w) => w.coordinator),
          ticks: TICKS,
          every: `${TICK_MILLIS} millis`,
          startPrice: 100
        })),
        // transient: its normal stop after the last tick is final; a crash would still be restarted
        { restart: "transient" }
      )
    ]
  }, { name: DESK })
  // Also on Ctrl-C: stop the desk while the printer still runs, so the orderly shutdown is shown.
  yield* Effect.addFinalizer(() =>
    Effect.zipRight(desk.stop, Deferred.await(deskStopped).pipe(Effect.timeout("1 second"), Effect.ignore))
  )
  yield* Deferred.succeed(wiring, {
    coordinator: desk.ref("coordinator"),
    panel: (["momentum", "contrarian", "flaky"] as const).map((name) => ({ name, ref: desk.ref(name) }))
  })

  // The feed stops itself after its last tick; its last update is already in the coordinator's
  // mailbox, ahead of this ask, so the summary covers every round.
  yield* system.awaitTermination(desk.ref("feed"))
  const summary = yield* desk.ref("coordinator").ask(new GetSummary(), { timeout: "1 second" })
  yield* desk.stop
  yield* Deferred.await(deskStopped)
  yield* narrator.flush

  const { crashes, escalations, restarts } = yield* Ref.get(tally)
  const handled = (yield* Metric.value(messagesHandled)).count
  const dead = yield* system.deadLetterCounts
  const deadTotal = dead.crashed + dead.overflow + dead.stopped
  const { decisions } = summary
  yield* Effect.forEach(
    [
      ``,
      `Summary`,
      `  rounds            ${summary.rounds} (${decisions.long} long, ${decisions.short} short, ${decisions.flat} flat)`,
      `  opinions          ${summary.answered} answered of ${summary.asked} asked`,
      `  messages handled  ${handled}`,
      `  crashes           ${crashes}, restarts ${restarts}, escalations ${escalations}`,
      `  dead letters      ${deadTotal} (crashed ${dead.crashed}, overflow ${dead.overflow}, stopped ${dead.stopped})`
    ],
    (line) => narrator.raw(line),
    { discard: true }
  )
})
