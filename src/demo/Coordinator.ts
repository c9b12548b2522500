/**
 * The demo coordinator: each `MarketUpdate` opens a round, asks every analyst for an opinion (all
 * at once, each with a deadline), votes by confidence and prints the round. A crashed or slow
 * analyst lowers participation; it never stalls the round.
 */
import { Effect, Either } from "effect"
import * as Actor from "../actor/Actor.js"
import type { ActorRef } from "../actor/ActorRef.js"
import type { AskError } from "../../schemas/ActorError.js"
import { Narrator } from "./Narrator.js"
import { CoordinatorProtocol, type DeskSummary, type Direction, type Opinion, RequestOpinion } from "./protocol.js"

export interface Panelist {
  readonly name: string
  readonly ref: ActorRef<RequestOpinion, "backpressure">
}

interface State {
  readonly panel: ReadonlyArray<Panelist>
  readonly summary: DeskSummary
}

/** Below this absolute score the desk stays flat. */
const THRESHOLD = 0.2
const OPINION_DEADLINE = "100 millis"

/** Pure: the confidence-weighted vote, over the whole panel (a missing opinion counts as flat). */
export const decide = (opinions: ReadonlyArray<Opinion>, panelSize: number): { direction: Direction; score: number } => {
  const sum = opinions.reduce(
    (acc, o) => acc + (o.direction === "long" ? o.confidence : o.direction === "short" ? -o.confidence : 0),
    0
  )
  const score = sum / Math.max(1, panelSize)
  return { direction: score > THRESHOLD ? "long" : score < -THRESHOLD ? "short" : "flat", score }
}

const describeFailure = (error: AskError): string => {
  switch (error._tag) {
    case "AskTimeout":
      return "timed out"
    case "MailboxFull":
      return "mailbox full"
    case "NoReply":
      return error.reason
  }
}

/** `long .62`; an analyst without enough history yet answers flat with no confidence: just `flat`. */
const formatOpinion = (o: Opinion) => (o.confidence === 0 ? o.direction : `${o.direction} ${o.confidence.toFixed(2).replace(/^0/, "")}`)

const emptySummary: DeskSummary = { rounds: 0, asked: 0, answered: 0, decisions: { long: 0, short: 0, flat: 0 } }

/** `panel` resolves once the tree is up: the analysts' refs exist only after their supervisor started them. */
export const make = (panel: Effect.Effect<ReadonlyArray<Panelist>>) =>
  Actor.make({
    protocol: CoordinatorProtocol,
    // Prices conflate: a coordinator that falls behind should skip stale prices, not queue them.
    mailbox: { capacity: 8, overflow: "dropOldest" },
    setup: () => Effect.map(panel, (analysts): State => ({ panel: analysts, summary: emptySummary })),
    behavior: (state, message, context) =>
      Effect.gen(function*() {
        switch (message._tag) {
          case "GetSummary": {
            yield* context.reply(message, state.summary)
            return state
          }
          case "MarketUpdate": {
            const round = message.seq
            const answers = yield* Effect.forEach(
              state.panel,
              (analyst) =>
                analyst.ref.ask(new RequestOpinion({ round, price: message.price }), { timeout: OPINION_DEADLINE }).pipe(
                  Effect.either,
                  Effect.map((answer) => ({ name: analyst.name, answer }))
                ),
              { concurrency: "unbounded" }
            )
            const opinions = answers.flatMap(({ answer }) => (Either.isRight(answer) ? [answer.right] : []))
            const decision = decide(opinions, state.panel.length)
            const votes = answers
              .map(({ answer, name }) =>
                Either.isRight(answer) ? `${name} ${formatOpinion(answer.right)}` : `${name} ✗ ${describeFailure(answer.left)}`
              )
              .join(" · ")
            const narrator = yield* Narrator
            yield* narrator.line(
              "coordinator",
              `round ${String(round).padStart(2)}  ${message.price.toFixed(2).padStart(7)}  ${votes}  → ${decision.direction.toUpperCase()}` +
                (opinions.length < state.panel.length ? ` (${opinions.length}/${state.panel.length} answered)` : ""),
              { tone: opinions.length < state.panel.length ? "warn" : "plain" }
            )
            const { summary } = state
            return {
              ...state,
              summary: {
                rounds: summary.rounds + 1,
                asked: summary.asked + state.panel.length,
                answered: summary.answered + opinions.length,
                decisions: { ...summary.decisions, [decision.direction]: summary.decisions[decision.direction] + 1 }
              }
            }
          }
        }
      })
  })
