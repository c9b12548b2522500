import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import type { Timestamp } from "../../schemas/Ids.js"
import {
  IllegalTransition,
  StateTransition,
  TradingState as TradingStateSchema,
  type TradingStatus,
  TransitionCause
} from "../../schemas/Risk.js"
import * as TradingState from "../../src/trading/TradingState.js"

const t0 = 1_709_564_400_000 as Timestamp
const t1 = (t0 + 60_000) as Timestamp

const status = (state: TradingStatus["state"], cause: TradingStatus["cause"] = null): TradingStatus => ({
  state,
  since: t0,
  cause,
  reason: "test",
  actor: cause === "operator" ? "ops" : null
})

const ok = <A>(result: Either.Either<A, IllegalTransition>): A => {
  if (Either.isLeft(result)) throw new Error(`unexpected illegal transition: ${result.left.message}`)
  return result.right
}

const illegal = <A>(result: Either.Either<A, IllegalTransition>): IllegalTransition => {
  if (Either.isRight(result)) throw new Error("expected an illegal transition")
  expect(result.left).toBeInstanceOf(IllegalTransition)
  return result.left
}

describe("TradingState", () => {
  it("starts active", () => {
    expect(TradingState.initial(t0)).toEqual({ state: "active", since: t0, cause: null, reason: "run started", actor: null })
  })

  it("admits everything when active, risk-reducing orders when reducing, nothing when halted", () => {
    expect([true, false].map((r) => TradingState.admits("active", r))).toEqual([true, true])
    expect([true, false].map((r) => TradingState.admits("reducing", r))).toEqual([true, false])
    expect([true, false].map((r) => TradingState.admits("halted", r))).toEqual([false, false])
  })

  it("the daily loss breaker moves active to reducing, and records why", () => {
    const { status: next, transition } = ok(
      TradingState.transition(status("active"), { to: "reducing", cause: "daily_loss_breaker", at: t1, reason: "down 6% today" })
    )
    expect(next).toEqual({ state: "reducing", since: t1, cause: "daily_loss_breaker", reason: "down 6% today", actor: null })
    expect(transition).toEqual({ from: "active", to: "reducing", cause: "daily_loss_breaker", at: t1, reason: "down 6% today", actor: null })
    expect(Schema.is(StateTransition)(transition)).toBe(true)
  })

  it("the drawdown halt moves active or reducing to halted", () => {
    for (const from of ["active", "reducing"] as const) {
      const { status: next } = ok(TradingState.transition(status(from), { to: "halted", cause: "drawdown_halt", at: t1, reason: "down 26% from peak" }))
      expect([next.state, next.cause]).toEqual(["halted", "drawdown_halt"])
    }
  })

  it("a new trading day lifts the daily loss breaker's reducing, and nothing else", () => {
    const lifted = TradingState.startTradingDay(status("reducing", "daily_loss_breaker"), t1)
    expect(lifted.status).toEqual({ state: "active", since: t1, cause: "new_trading_day", reason: "a new trading day started", actor: null })
    expect(lifted.transition).toMatchObject({ from: "reducing", to: "active", cause: "new_trading_day" })
    for (const s of [status("reducing", "operator"), status("halted", "drawdown_halt"), status("halted", "operator"), status("active")]) {
      expect(TradingState.startTradingDay(s, t1)).toEqual({ status: s, transition: null })
    }
    expect(
      illegal(TradingState.transition(status("reducing", "operator"), { to: "active", cause: "new_trading_day", at: t1, reason: "morning" }))
        .message
    ).toBe("reducing was entered by operator, not the daily loss breaker: only an operator lifts it")
  })

  it("a halt is lifted only by an operator who says who and why", () => {
    const halted = status("halted", "drawdown_halt")
    const resumed = ok(TradingState.resume(halted, { actor: "alice", reason: "reviewed the drawdown", at: t1 }))
    expect(resumed.status).toEqual({ state: "active", since: t1, cause: "operator", reason: "reviewed the drawdown", actor: "alice" })
    expect(resumed.transition.actor).toBe("alice")
    expect(ok(TradingState.resume(halted, { actor: "alice", reason: "exits only", at: t1, to: "reducing" })).status.state).toBe("reducing")

    expect(illegal(TradingState.resume(halted, { actor: "  ", reason: "ok", at: t1 })).message).toBe(
      "an operator transition names the operator: the actor is empty"
    )
    expect(illegal(TradingState.resume(halted, { actor: "alice", reason: "", at: t1 })).message).toBe(
      "a transition records why: the reason is empty"
    )
    const byMachine = illegal(TradingState.transition(halted, { to: "active", cause: "new_trading_day", at: t1, reason: "morning" }))
    expect(byMachine).toMatchObject({
      _tag: "IllegalTransition",
      from: "halted",
      to: "active",
      cause: "new_trading_day",
      message: "halted → active is not allowed for new_trading_day (only operator)"
    })
  })

  it("operators can halt and restrict to reducing", () => {
    expect(ok(TradingState.halt(status("active"), { actor: "bob", reason: "news", at: t1 })).status).toMatchObject({
      state: "halted",
      actor: "bob"
    })
    expect(ok(TradingState.reduceOnly(status("active"), { actor: "bob", reason: "de-risk", at: t1 })).status.state).toBe("reducing")
    expect(ok(TradingState.resume(status("reducing", "operator"), { actor: "bob", reason: "done", at: t1 })).status.state).toBe("active")
  })

  it("refuses a transition to the current state", () => {
    expect(illegal(TradingState.halt(status("halted", "drawdown_halt"), { actor: "bob", reason: "again", at: t1 })).message).toBe(
      "trading is already halted"
    )
    expect(illegal(TradingState.resume(status("active"), { actor: "bob", reason: "go", at: t1 })).message).toBe("trading is already active")
  })

  it("refuses transitions the table does not allow", () => {
    expect(
      illegal(TradingState.transition(status("halted", "drawdown_halt"), { to: "reducing", cause: "daily_loss_breaker", at: t1, reason: "x" }))
        .message
    ).toBe("halted → reducing is not allowed for daily_loss_breaker (only operator)")
    expect(illegal(TradingState.transition(status("active"), { to: "reducing", cause: "drawdown_halt", at: t1, reason: "x" })).message).toBe(
      "active → reducing is not allowed for drawdown_halt (only daily_loss_breaker, operator)"
    )
  })

  it("follows the table for every state, target and cause", () => {
    const states = TradingStateSchema.literals
    for (const from of states) {
      for (const to of states) {
        for (const cause of TransitionCause.literals) {
          const result = TradingState.transition(status(from, from === "reducing" ? "daily_loss_breaker" : null), {
            to,
            cause,
            at: t1,
            reason: "because",
            actor: "ops"
          })
          const expected = from !== to && TradingState.allowed[from][to].includes(cause)
          expect([from, to, cause, Either.isRight(result)]).toEqual([from, to, cause, expected])
        }
      }
    }
    // halted is left only by an operator
    expect(TradingState.allowed.halted).toEqual({ active: ["operator"], reducing: ["operator"], halted: [] })
  })

  it("applies a proposed transition only from the state it was proposed in", () => {
    const proposed = { from: "active", to: "reducing", cause: "daily_loss_breaker", at: t1, reason: "down 6%", actor: null } as const
    expect(ok(TradingState.apply(status("active"), proposed)).status.state).toBe("reducing")
    expect(illegal(TradingState.apply(status("halted", "operator"), proposed)).message).toBe(
      "the transition was proposed from active but trading is halted"
    )
  })
})
