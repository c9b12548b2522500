/**
 * The trading state machine, as nautilus_trader's risk engine has it: `active` lets everything
 * through, `reducing` only risk-reducing orders, `halted` nothing. A pure transition function over
 * a `TradingStatus`; a transition the table does not allow is a typed `IllegalTransition`, and
 * every transition records why (and an operator's, who).
 *
 * Allowed transitions (from → to: causes):
 *   active   → reducing: daily_loss_breaker, operator
 *   active   → halted:   drawdown_halt, operator, system
 *   reducing → halted:   drawdown_halt, operator, system
 *   reducing → active:   new_trading_day (only when the daily loss breaker put it there), operator
 *   halted   → active:   operator   (a halt is lifted only explicitly)
 *   halted   → reducing: operator   (lift a halt but only let positions be reduced)
 * A transition to the current state is illegal: callers that fire automatically use
 * `startTradingDay`, which is a no-op when it does not apply, and breakers come proposed (by a
 * verdict, or by `RiskCheck.breakers` at the ledger's marks) only when they change the state.
 *
 * Decisions: the daily loss breaker's `reducing` is lifted at the next trading day (the day's loss
 * starts again from zero then); an operator's `reducing` is not, only an operator lifts it. On a
 * resume, the risk officer should restart the day's starting equity (from `reducing`) or the peak
 * equity (from `halted`) at the current equity, or the next check trips the breaker again.
 */
import { Either } from "effect"
import type { Timestamp } from "../../schemas/Ids.js"
import {
  IllegalTransition,
  type StateTransition,
  type TradingState,
  type TradingStatus,
  type TransitionCause
} from "../../schemas/Risk.js"

/** Which causes may move the state from one value to another. */
export const allowed: {
  readonly [F in TradingState]: { readonly [T in TradingState]: ReadonlyArray<TransitionCause> }
} = {
  active: { active: [], reducing: ["daily_loss_breaker", "operator"], halted: ["drawdown_halt", "operator", "system"] },
  reducing: { active: ["new_trading_day", "operator"], reducing: [], halted: ["drawdown_halt", "operator", "system"] },
  halted: { active: ["operator"], reducing: ["operator"], halted: [] }
}

/** A run starts active. */
export const initial = (at: Timestamp): TradingStatus => ({
  state: "active",
  since: at,
  cause: null,
  reason: "run started",
  actor: null
})

export interface TransitionRequest {
  readonly to: TradingState
  readonly cause: TransitionCause
  readonly at: Timestamp
  /** Why; must not be blank. */
  readonly reason: string
  /** Who; required (not blank) when the cause is `operator`. */
  readonly actor?: string | null
}

export interface Transitioned {
  readonly status: TradingStatus
  readonly transition: StateTransition
}

const illegal = (from: TradingState, request: TransitionRequest, message: string) =>
  Either.left(new IllegalTransition({ from, to: request.to, cause: request.cause, message }))

/** Moves `status` as `request` asks, if the table allows it and the request says why (and who). */
export const transition = (
  status: TradingStatus,
  request: TransitionRequest
): Either.Either<Transitioned, IllegalTransition> => {
  const from = status.state
  const { at, cause, to } = request
  if (from === to) return illegal(from, request, `trading is already ${to}`)
  const causes = allowed[from][to]
  if (!causes.includes(cause)) {
    return illegal(
      from,
      request,
      causes.length === 0
        ? `${from} → ${to} is never allowed`
        : `${from} → ${to} is not allowed for ${cause} (only ${causes.join(", ")})`
    )
  }
  if (cause === "new_trading_day" && status.cause !== "daily_loss_breaker") {
    return illegal(
      from,
      request,
      `reducing was entered by ${status.cause ?? "the start of the run"}, not the daily loss breaker: only an operator lifts it`
    )
  }
  const reason = request.reason.trim()
  if (reason === "") return illegal(from, request, "a transition records why: the reason is empty")
  const actor = request.actor === undefined || request.actor === null ? null : request.actor.trim()
  if (cause === "operator" && (actor === null || actor === "")) {
    return illegal(from, request, "an operator transition names the operator: the actor is empty")
  }
  const recordedActor = actor === "" ? null : actor
  return Either.right({
    status: { state: to, since: at, cause, reason, actor: recordedActor },
    transition: { from, to, cause, at, reason, actor: recordedActor }
  })
}

/** Applies a transition a verdict proposed; illegal if the state moved since the verdict was computed. */
export const apply = (status: TradingStatus, proposed: StateTransition): Either.Either<Transitioned, IllegalTransition> =>
  status.state !== proposed.from
    ? Either.left(
      new IllegalTransition({
        from: status.state,
        to: proposed.to,
        cause: proposed.cause,
        message: `the transition was proposed from ${proposed.from} but trading is ${status.state}`
      })
    )
    : transition(status, proposed)

/** An operator lifts a halt (or a `reducing`), to `active` by default. */
export const resume = (
  status: TradingStatus,
  request: { readonly actor: string; readonly reason: string; readonly at: Timestamp; readonly to?: "active" | "reducing" }
): Either.Either<Transitioned, IllegalTransition> =>
  transition(status, { to: request.to ?? "active", cause: "operator", at: request.at, reason: request.reason, actor: request.actor })

/** An operator halts trading. */
export const halt = (
  status: TradingStatus,
  request: { readonly actor: string; readonly reason: string; readonly at: Timestamp }
): Either.Either<Transitioned, IllegalTransition> => transition(status, { to: "halted", cause: "operator", ...request })

/** An operator restricts trading to risk-reducing orders. */
export const reduceOnly = (
  status: TradingStatus,
  request: { readonly actor: string; readonly reason: string; readonly at: Timestamp }
): Either.Either<Transitioned, IllegalTransition> => transition(status, { to: "reducing", cause: "operator", ...request })

/**
 * The start of a trading day: lifts a `reducing` the daily loss breaker set; anything else is left
 * as it is (`transition: null`).
 */
export const startTradingDay = (
  status: TradingStatus,
  at: Timestamp
): { readonly status: TradingStatus; readonly transition: StateTransition | null } => {
  if (status.state !== "reducing" || status.cause !== "daily_loss_breaker") return { status, transition: null }
  const result = transition(status, { to: "active", cause: "new_trading_day", at, reason: "a new trading day started" })
  return Either.isRight(result) ? result.right : { status, transition: null }
}

/** Whether an order may pass in this state: everything when active, risk-reducing ones when reducing, none when halted. */
export const admits = (state: TradingState, riskReducing: boolean): boolean =>
  state === "active" || (state === "reducing" && riskReducing)
