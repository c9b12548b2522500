/**
 * `npm start`. Until the trading swarm lands, this runs the supervised demo in `src/demo/`. There is
 * no platform runtime installed (only `effect`), so this file does what `NodeRuntime.runMain` would:
 * run the program, turn its exit into the process's exit code, and interrupt it cleanly on Ctrl-C.
 */
import { Cause, Effect, Exit, Fiber, Layer, Random } from "effect"
import * as ActorSystem from "./actor/ActorSystem.js"
import * as Desk from "./demo/Desk.js"
import * as Narrator from "./demo/Narrator.js"

/** Same seed, same prices: agents draw randomness from Effect's `Random`, never `Math.random()`. */
const SEED = "swarm-demo"
/** The demo ends by itself in about two seconds; past this something is wrong, so fail loudly. */
const DEADLINE = "30 seconds"

const main = Desk.program.pipe(
  Effect.scoped,
  Effect.timeoutFail({ duration: DEADLINE, onTimeout: () => new Error(`the demo did not finish within ${DEADLINE}`) }),
  Effect.withRandom(Random.make(SEED)),
  Effect.provide(Layer.merge(ActorSystem.layer(), Narrator.layer({ terminal: process.stdout.isTTY === true })))
)

const fiber = Effect.runFork(main)

/** Why we interrupted the program, if we did. */
let stopping: NodeJS.Signals | "closed stdout" | undefined
const stop = (why: NonNullable<typeof stopping>) => {
  if (stopping !== undefined) return
  stopping = why
  Effect.runFork(Fiber.interrupt(fiber))
}

// The first signal interrupts the program (finalizers stop every actor); a second one exits at once.
const onSignal = (signal: NodeJS.Signals) => {
  if (stopping !== undefined) process.exit(signal === "SIGINT" ? 130 : 143)
  process.stderr.write(`\n${signal}: stopping the actors...\n`)
  stop(signal)
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)
// `npm start | head`: the reader left, which is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error
  stop("closed stdout")
})

fiber.addObserver((exit) => {
  process.off("SIGINT", onSignal)
  process.off("SIGTERM", onSignal)
  if (Exit.isSuccess(exit) || stopping === "closed stdout") {
    process.exitCode = 0
  } else if (Exit.isInterrupted(exit)) {
    process.stderr.write("stopped before the end of the demo\n")
    process.exitCode = stopping === "SIGTERM" ? 143 : 130
  } else {
    process.stderr.write(`the demo failed:\n${Cause.pretty(exit.cause)}\n`)
    process.exitCode = 1
  }
  // Nothing should keep the event loop alive after this; if something does, do not hang.
  setTimeout(() => process.exit(), 2_000).unref()
})
