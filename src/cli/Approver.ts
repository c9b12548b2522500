/**
 * The person at the terminal as the approver of a strategy with the approval policy `pause`: each
 * held intent is shown with the reasons it needs approval, answered yes or no with a reason. Only
 * offered when stdin is a terminal; a run without a terminal fails closed (the backtest says an
 * approval was required).
 */
import { Effect } from "effect"
import * as os from "node:os"
import type * as Backtest from "../swarm/Backtest.js"
import type { Prompter } from "./Io.js"
import { price, quantity } from "./Summary.js"

/** Who answers: the login name, as the audit trail records it. */
const operator = (): string => {
  try {
    const name = os.userInfo().username.trim()
    return name === "" ? "operator" : name
  } catch {
    return "operator"
  }
}

export const describe = (request: Backtest.ApprovalRequest): string => {
  const { intent } = request
  const reasons = request.reasons.length === 0 ? "" : request.reasons.map((r) => `\n  - ${r}`).join("")
  return `approval needed (${request.round}): ${intent.side} ${quantity(request.quantity)} ${intent.symbol} (${intent.reason}) at about ${
    price(intent.referencePrice)
  }${reasons}`
}

/** `prompter` asks the person; `aside` keeps a progress bar off the screen meanwhile. */
export const make = (
  prompter: Prompter,
  aside: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> = (effect) => effect
): (request: Backtest.ApprovalRequest) => Effect.Effect<Backtest.ApprovalAnswer> => {
  const by = operator()
  return (request) =>
    aside(Effect.gen(function*() {
      yield* prompter.discard
      let question = `\n${describe(request)}\napprove? [y/n] `
      let approved: boolean | undefined
      while (approved === undefined) {
        const answer = (yield* prompter.ask(question)).toLowerCase()
        if (answer === "y" || answer === "yes") approved = true
        // No answer (Enter, or Ctrl-D closing stdin) fails closed, like a run without a terminal.
        else if (answer === "n" || answer === "no" || answer === "") approved = false
        else question = "please answer y or n: "
      }
      const reason = yield* prompter.ask("reason: ")
      return { approved, by, reason: reason === "" ? (approved ? "approved at the terminal" : "rejected at the terminal") : reason }
    }))
}
