/**
 * A run's LLM budget, kept fail-closed: before a call, the most it could cost is reserved — its
 * prompt's upper bound in tokens plus the longest answer it may give — and a call whose reservation
 * does not fit is not made. After the call, the reservation is settled at what the backend counted.
 * So the budget is never exceeded, whatever answers come back.
 *
 * A call that only the reservations of the calls in flight leave no room for may wait for room
 * (`reserveWaiting`): the calls in flight are settled at what they used, usually far less than they
 * reserved, and each settlement serves the calls waiting in the order they came — so one agent's
 * call, first in every round, does not leave the others none round after round. It waits as long
 * as its caller gives it (the call's timeout, on the Clock, and the round's deadline), then is
 * refused, its alone. A call that what is settled leaves no room for is refused at once. A replay
 * or a resume charges its recorded calls (`charge`) and never waits.
 *
 * Token upper bound of a prompt: its UTF-8 bytes plus a few per message. A BPE token is at least one
 * byte of text, and the chat template adds a handful of tokens a message; generous, and honest.
 */
import { Deferred, type Duration, Effect, Either, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { type LlmBudget, LlmBudgetExhausted, type Message } from "../../schemas/Llm.js"

/** Tokens a chat template may add around one message (role markers, separators). */
const TEMPLATE_TOKENS_PER_MESSAGE = 16

export const promptTokensUpperBound = (messages: ReadonlyArray<Message>): number => {
  let tokens = TEMPLATE_TOKENS_PER_MESSAGE
  for (const message of messages) {
    tokens += TEMPLATE_TOKENS_PER_MESSAGE + Buffer.byteLength(message.content, "utf8")
    if (message.toolCalls !== undefined) tokens += Buffer.byteLength(JSON.stringify(message.toolCalls), "utf8")
  }
  return tokens
}

/** `LlmBudgetExhausted.message`, read back: the budget spent, or no room while other calls are in flight. */
const REFUSAL = /^run (.+)'s LLM (tokens|cost) budget is spent \((.+) of (.+); the call needed up to (.+)\)$/
const NO_ROOM = /^run (.+)'s LLM (tokens|cost) budget has no room for the call while others are in flight \((.+) spent and (.+) reserved of (.+); the call needed up to (.+)\)$/

/**
 * The refusal whose `message` is `error` (a refused call's recorded reason), or undefined when it
 * is not one: only a refusal that says exactly the same is given back.
 */
export const refusalOf = (error: string): LlmBudgetExhausted | undefined => {
  const spent = REFUSAL.exec(error)
  const noRoom = spent === null ? NO_ROOM.exec(error) : null
  const fields = spent !== null
    ? { run: spent[1], limit: spent[2], spent: Number(spent[3]), max: Number(spent[4]), needed: Number(spent[5]) }
    : noRoom !== null
    ? { run: noRoom[1], limit: noRoom[2], spent: Number(noRoom[3]), reserved: Number(noRoom[4]), max: Number(noRoom[5]), needed: Number(noRoom[6]) }
    : undefined
  if (fields === undefined) return undefined
  const refusal = Either.getOrUndefined(Schema.decodeUnknownEither(LlmBudgetExhausted)({ _tag: "LlmBudgetExhausted", ...fields }))
  return refusal?.message === error ? refusal : undefined
}

/**
 * Whether a refused call's recorded reason spends the budget for good: every refusal but one
 * that only the calls in flight made (`reserved`), which was that call's alone.
 */
export const spendsBudget = (error: string | undefined): boolean =>
  error === undefined || refusalOf(error)?.reserved === undefined

export interface Reservation {
  readonly tokens: number
  readonly cost: number
}

/** A call waiting for room (`Budget.reserveWaiting`), in line. */
interface Waiter {
  readonly tokens: number
  readonly cost: number
  readonly tentative: boolean
  /** Done when the budget has its answer. */
  readonly signal: Deferred.Deferred<void>
  /** Its answer, once it has one: the reservation made for it, or its refusal. */
  answer: Either.Either<Reservation, LlmBudgetExhausted> | undefined
}

export interface WaitOptions {
  /** A call that may be left out (see `reserve`): a refusal, even one that what is settled makes, is its alone. */
  readonly tentative?: boolean | undefined
  /** The longest it waits for room, on the Clock; then it is refused as crowded out (`reserved`). */
  readonly within: Duration.DurationInput
  /**
   * Where the waiting happens: a run's world must know that one of its calls waits on something
   * outside it (a chat's call in flight, settled on the server's runtime), else it would move its
   * virtual time on, or leave the call's wake-up unrun. The default: here.
   */
  readonly place?: (<A>(wait: Effect.Effect<A>) => Effect.Effect<A>) | undefined
  /**
   * Told the answer as the wait ends, before the caller can be interrupted: a caller that settles
   * its reservation when interrupted (`LlmSession`) learns of it here, or it would be held for good.
   */
  readonly onAnswer?: ((answer: Either.Either<Reservation, LlmBudgetExhausted>) => void) | undefined
}

export class Budget {
  /** Settled tokens and cost. */
  tokens = 0
  cost = 0
  /** Reserved for calls in flight. */
  private reservedTokens = 0
  private reservedCost = 0
  /** The first refusal: from then on every call is refused (and the run says so once). */
  private refusal: LlmBudgetExhausted | undefined = undefined
  /** Calls waiting for room, in the order they came (`reserveWaiting`). */
  private readonly waiting: Array<Waiter> = []

  get exhausted(): boolean {
    return this.refusal !== undefined
  }

  constructor(readonly run: RunId, readonly limits: LlmBudget) {}

  costOf(tokensIn: number, tokensOut: number): number {
    return (tokensIn * this.limits.pricePerMillionIn + tokensOut * this.limits.pricePerMillionOut) / 1_000_000
  }

  get priced(): boolean {
    return this.limits.pricePerMillionIn > 0 || this.limits.pricePerMillionOut > 0
  }

  /**
   * Reserve a call of at most `tokensIn` prompt and `tokensOut` answer tokens, or say why it cannot
   * be made. A call that what is settled leaves no room for spends the budget: that refusal is
   * remembered, and every later call refused. A call that only the reservations of the calls in
   * flight leave no room for (they are settled at what they use, often far less) — or the calls
   * waiting for room before it (`reserveWaiting`), served first — and a `tentative` one (that may be
   * left out: the retry of an answer that did not decode), are refused alone. Never waits.
   */
  reserve(tokensIn: number, tokensOut: number, tentative = false): Either.Either<Reservation, LlmBudgetExhausted> {
    const answer = this.admit(tokensIn + tokensOut, this.costOf(tokensIn, tokensOut), tentative, this.waiting.length)
    // Spent: the calls waiting are refused too, now.
    if (this.refusal !== undefined) this.serve()
    return answer
  }

  /**
   * `reserve`, but a call that only the calls in flight (and those already waiting) leave no room
   * for waits for room, in line: each call in flight that settles serves the calls waiting, first
   * come first served, until one still does not fit. It is refused as `reserve` refuses it — its
   * alone, `reserved` — when `within` passes first, and at once (spending the budget, unless
   * tentative) when what is settled leaves it no room. Interrupted, it leaves the line, and a
   * reservation made for it meanwhile is released.
   */
  reserveWaiting(tokensIn: number, tokensOut: number, options: WaitOptions): Effect.Effect<Either.Either<Reservation, LlmBudgetExhausted>> {
    const tokens = tokensIn + tokensOut
    const cost = this.costOf(tokensIn, tokensOut)
    const tentative = options.tentative === true
    const place = options.place ?? ((wait) => wait)
    // Uninterruptible from the check to the wait: a call put in line always leaves it (else it would
    // hold up every call behind it).
    return Effect.uninterruptibleMask((restore) =>
      Effect.fiberIdWith((fiber) => {
        const told = (answer: Either.Either<Reservation, LlmBudgetExhausted>) => {
          options.onAnswer?.(answer)
          return answer
        }
        const now = this.reserve(tokensIn, tokensOut, tentative)
        if (Either.isRight(now) || now.left.reserved === undefined) return Effect.succeed(told(now))
        const waiter: Waiter = { tokens, cost, tentative, signal: Deferred.unsafeMake<void>(fiber), answer: undefined }
        this.waiting.push(waiter)
        return restore(place(Effect.timeoutOption(Deferred.await(waiter.signal), options.within))).pipe(
          Effect.onInterrupt(() => Effect.sync(() => this.abandon(waiter))),
          Effect.map(() => told(this.leave(waiter)))
        )
      })
    )
  }

  /** `waiter` out of the line, its wait over: its answer, else its refusal now. */
  private leave(waiter: Waiter): Either.Either<Reservation, LlmBudgetExhausted> {
    const at = this.waiting.indexOf(waiter)
    const answer = waiter.answer ?? this.admit(waiter.tokens, waiter.cost, waiter.tentative, at)
    if (at >= 0) this.waiting.splice(at, 1)
    // The calls behind it counted it ahead of them: some may fit now.
    this.serve()
    return answer
  }

  /** `waiter` gives up (interrupted): out of the line, and a reservation made for it released. */
  private abandon(waiter: Waiter): void {
    const at = this.waiting.indexOf(waiter)
    if (at >= 0) this.waiting.splice(at, 1)
    if (waiter.answer !== undefined && Either.isRight(waiter.answer)) {
      this.reservedTokens -= waiter.answer.right.tokens
      this.reservedCost -= waiter.answer.right.cost
    }
    this.serve()
  }

  /**
   * Give the calls waiting their answers, in line: a reservation while there is room for the first,
   * and a refusal to any that what is settled leaves no room for, wherever it waits.
   */
  private serve(): void {
    for (let i = 0; i < this.waiting.length;) {
      const waiter = this.waiting[i]!
      const answer = this.admit(waiter.tokens, waiter.cost, waiter.tentative, i)
      if (Either.isLeft(answer) && answer.left.reserved !== undefined) {
        i++
        continue
      }
      this.waiting.splice(i, 1)
      waiter.answer = answer
      Deferred.unsafeDone(waiter.signal, Effect.void)
      // A refusal that spent the budget refuses those before it too; a reservation leaves less room.
      i = 0
    }
  }

  /**
   * Reserve `tokens` and `cost` for a call with `ahead` calls waiting before it, or say why not
   * (see `reserve`); a reserved-only refusal counts those waiting ahead as reserved.
   */
  private admit(tokens: number, cost: number, tentative: boolean, ahead: number): Either.Either<Reservation, LlmBudgetExhausted> {
    // Once spent, the budget is spent for good: a run's LLM agents do not come back when a later
    // call happens to be smaller.
    if (this.refusal !== undefined) return Either.left(this.refusal)
    let aheadTokens = 0
    let aheadCost = 0
    for (let i = 0; i < ahead; i++) {
      aheadTokens += this.waiting[i]!.tokens
      aheadCost += this.waiting[i]!.cost
    }
    const refuse = (refusal: LlmBudgetExhausted) =>
      tentative || refusal.reserved !== undefined ? Either.left(refusal) : this.refuse(refusal)
    const reservedTokens = this.reservedTokens + aheadTokens
    if (this.tokens + reservedTokens + tokens > this.limits.tokens) {
      const inFlight = this.tokens + tokens <= this.limits.tokens
      return refuse(new LlmBudgetExhausted({
        run: this.run,
        limit: "tokens",
        spent: this.tokens,
        needed: tokens,
        max: this.limits.tokens,
        ...(inFlight ? { reserved: reservedTokens } : {})
      }))
    }
    const maxCost = this.limits.maxCost
    const reservedCost = this.reservedCost + aheadCost
    if (maxCost !== undefined && this.cost + reservedCost + cost > maxCost) {
      const inFlight = this.cost + cost <= maxCost
      return refuse(new LlmBudgetExhausted({
        run: this.run,
        limit: "cost",
        spent: this.cost,
        needed: cost,
        max: maxCost,
        ...(inFlight ? { reserved: reservedCost } : {})
      }))
    }
    this.reservedTokens += tokens
    this.reservedCost += cost
    return Either.right({ tokens, cost })
  }

  private refuse(refusal: LlmBudgetExhausted): Either.Either<never, LlmBudgetExhausted> {
    this.refusal = refusal
    return Either.left(refusal)
  }

  /**
   * Release a reservation and charge what the call used. Counts above the reservation (a backend
   * that miscounts) are charged at the reservation: the limit holds either way. The calls waiting
   * for room are served from what is left.
   */
  settle(reservation: Reservation, tokensIn: number, tokensOut: number): { readonly tokens: number; readonly cost: number } {
    this.reservedTokens -= reservation.tokens
    this.reservedCost -= reservation.cost
    const tokens = Math.min(tokensIn + tokensOut, reservation.tokens)
    const cost = Math.min(this.costOf(tokensIn, tokensOut), reservation.cost)
    this.tokens += tokens
    this.cost += cost
    this.serve()
    return { tokens, cost }
  }

  /**
   * Refuse from now on, as the budget did when it refused the call that gave `error` (a recorded
   * refused call's, answered again by a replay or a resume): the re-execution of a run's recording
   * charges its calls (`charge`) but never meets its refusal, and without it a resumed run whose
   * budget had run out would make a later call that happens to fit — one the run, which said its
   * LLM agents abstain from then on, never made. The refusal is the recorded one, so the calls it
   * refuses afterwards give the same reason. Nothing changes once the budget has refused, nor for a
   * refusal that was its call's alone (no room while other calls were in flight).
   */
  refuseAs(error: string | undefined): void {
    if (!spendsBudget(error)) return
    this.refusal ??= (error === undefined ? undefined : refusalOf(error)) ??
      new LlmBudgetExhausted({ run: this.run, limit: "tokens", spent: this.tokens, needed: 0, max: this.limits.tokens })
    this.serve()
  }

  /** Charge a call answered from a recording (replay, resume), as it was charged when it was made. */
  charge(tokens: number, cost: number): void {
    this.tokens += tokens
    this.cost += cost
    this.serve()
  }

  /** What is left, in tokens. */
  get remaining(): number {
    return Math.max(0, this.limits.tokens - this.tokens - this.reservedTokens)
  }
}

/**
 * The budgets of the runs executing in this process, by run: a run's chat (the system agent)
 * spends the very budget its LLM agents spend while it runs here, so the two together never pass
 * it. A run registers its budget when it starts and withdraws it when it ends.
 */
export class LiveBudgets {
  private readonly budgets = new Map<string, Budget>()
  /** Live budgets already charged what their run's chat had spent before them. */
  private readonly chatCharged = new WeakSet<Budget>()

  /**
   * `budget` is its run's live one until the returned function is called. `chat`, what the run's
   * chat had recorded spending before (a resumed run: the chat went on while no process ran it),
   * is charged to it at once — before any of the run's calls, so the two together stay within it.
   */
  register(budget: Budget, chat?: { readonly tokens: number; readonly cost: number }): () => void {
    this.budgets.set(budget.run, budget)
    if (chat !== undefined) this.chargeChat(budget, chat)
    return () => {
      if (this.budgets.get(budget.run) === budget) this.budgets.delete(budget.run)
    }
  }

  get(run: RunId): Budget | undefined {
    return this.budgets.get(run)
  }

  /** Whether `budget` has been charged its run's earlier chat spending (`chargeChat`). */
  chargedChat(budget: Budget): boolean {
    return this.chatCharged.has(budget)
  }

  /** Charge `budget` what its run's chat had spent before it was registered: once, whoever asks first. */
  chargeChat(budget: Budget, chat: { readonly tokens: number; readonly cost: number }): void {
    if (this.chatCharged.has(budget)) return
    this.chatCharged.add(budget)
    budget.charge(chat.tokens, chat.cost)
  }
}
