/**
 * The server side of the chat procedures (schemas/Rpc.ts `ChatRpcs`): a question to the system
 * agent, streamed back; the run's chat followed from a position (ChatFollow.ts, as its SSE route
 * resumes); the run's chat history; the rule suggestions for the run, and applying one
 * (a new version of the run's strategy). Every procedure acts only on a run the principal may see —
 * another's run is `RunNotFound`, like one that does not exist; an admin sees every run — and bad
 * input is a typed `InvalidRequest` naming the field. An answer streaming back is cut short with
 * `Unauthorized` once its key no longer authenticates, or with `RunNotFound` once the key's user may
 * no longer see the run (an admin demoted), checked again as `runs.events` does.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option, ParseResult, Schema, Stream } from "effect"
import { SystemAgent } from "../../agents/system/SystemAgent.js"
import * as Tools from "../../agents/system/Tools.js"
import type { Principal } from "../../schemas/Auth.js"
import { ChatQuestion, positionOf, SuggestionNotFound } from "../../schemas/Chat.js"
import { ChatRpcs, Conflict, CurrentPrincipal, InvalidRequest, StrategyNotFound, Unavailable } from "../../schemas/Rpc.js"
import { Rule } from "../../schemas/Rule.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Chats from "../store/Chats.js"
import * as Runs from "../store/Runs.js"
import * as Strategies from "../store/Strategies.js"
import * as Auth from "./Auth.js"
import * as ChatFollow from "./ChatFollow.js"
import * as Follow from "./Follow.js"
import { bearerKey } from "./RpcAuth.js"
import { unavailable } from "./Unavailable.js"

const ownerFilter = (principal: Principal) => (principal.role === "admin" ? undefined : principal.userId)

const decodeQuestion = Schema.decodeUnknown(ChatQuestion)
const decodeStrategy = Schema.decodeUnknown(Strategy)
const encodeStrategy = Schema.encodeSync(Strategy)
const encodeRule = Schema.encodeSync(Rule)

const reasonOf = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  return issue === undefined ? "is not valid" : `${issue.path.length === 0 ? "" : `${issue.path.join(".")}: `}${issue.message}`
}

/**
 * What a chat stream reads when its client connects (the run), and the history a client reads with
 * it, under a permit of the followers' reads (`Follow.catchUpReads`), as the run events' streams
 * take one: after a restart every dashboard reconnects at once, and with the chat's stream reads
 * its run and the chat's history again (its `Missed`); gated, their reads take their turns and the
 * pool stays free for the runs' writes. Let go before the stream starts: nothing here waits for a
 * permit while it holds one.
 */
const connectRead = Follow.catchUpReads.withPermits(1)

export const ChatHandlers = ChatRpcs.toLayer(Effect.gen(function*() {
  const context = yield* Effect.context<SqlClient.SqlClient>()
  const agent = yield* SystemAgent
  const auth = yield* Auth.Authenticator
  const recheck = yield* Auth.Recheck
  const as = <A, E, R>(f: (principal: Principal) => Effect.Effect<A, E, R>) =>
    Effect.flatMap(CurrentPrincipal, f).pipe(Effect.provide(context))
  /** The run as the principal may see it (the whole record: the tools read its strategy). */
  const runOf = (principal: Principal, ref: string) => Runs.get(ref, ownerFilter(principal))

  return {
    "chat.send": ({ message, run }, { headers }) => {
      // The middleware let the request in with this key; an answer may outlast it (revoked, its user disabled).
      const key = bearerKey(headers["authorization"])
      return Stream.unwrapScoped(as((p) =>
        Effect.gen(function*() {
          const question = yield* decodeQuestion(message).pipe(
            Effect.mapError((error) => new InvalidRequest({ field: "message", reason: reasonOf(error) }))
          )
          const summary = yield* unavailable(connectRead(Runs.getSummary(run, ownerFilter(p))))
          // Cut short, the answer still finishes and is recorded (an asker that goes away, to the agent).
          const answer = agent.ask(summary.id, question).pipe(
            Stream.mapError((error) => new Unavailable({ reason: error.reason }))
          )
          return key === undefined ? answer : Stream.interruptWhen(answer, Auth.runRefusal(auth, key, recheck, { ref: run, owner: summary.owner }))
        }).pipe(Effect.withSpan("Chat.send"))
      ))
    },

    "chat.follow": ({ after, run }, { headers }) => {
      const key = bearerKey(headers["authorization"])
      return Stream.unwrapScoped(as((p) =>
        Effect.gen(function*() {
          const from = yield* ChatFollow.position(after, "after")
          const summary = yield* unavailable(connectRead(Runs.getSummary(run, ownerFilter(p))))
          // Where a follower cut off here would resume: the last chunk it was sent, else where it resumed after.
          let last = from === undefined ? undefined : positionOf(from)
          const chunks = (yield* ChatFollow.follow(agent, summary.id, from)).pipe(
            Stream.tap((chunk) => Effect.sync(() => chunk._tag !== "Missed" && (last = positionOf(chunk)))),
            // Fallen behind, it resumes from where it was (`behind`, as a client that reads too slowly);
            // chunks lost between servers are not to be had again here: `chat.history` has them.
            Stream.mapError((overflow) =>
              new Unavailable({
                reason: `${overflow.message}: ${last === undefined ? "follow again" : `follow again after ${last}`}${
                  overflow.lostFrom === undefined ? "" : ", and read the answer whole with chat.history"
                }`,
                ...(overflow.lostFrom === undefined ? { behind: true } : {})
              })
            )
          )
          return key === undefined ? chunks : Stream.interruptWhen(chunks, Auth.runRefusal(auth, key, recheck, { ref: run, owner: summary.owner }))
        }).pipe(Effect.withSpan("Chat.follow"))
      ))
    },

    // Under a permit too: a dashboard that reconnects reads the history again when it missed part of an answer (`Missed`).
    "chat.history": ({ before, limit, run }) =>
      as((p) =>
        unavailable(connectRead(Effect.gen(function*() {
          const summary = yield* Runs.getSummary(run, ownerFilter(p))
          const session = yield* Chats.find(summary.id)
          if (Option.isNone(session)) return { run: summary.id, session: null, messages: [] }
          const messages = yield* Chats.history(session.value.id, {
            ...(limit === undefined ? {} : { limit }),
            ...(before === undefined ? {} : { before })
          })
          return { run: summary.id, session: session.value.id, messages }
        }))).pipe(Effect.withSpan("Chat.history"))
      ),

    "chat.suggestions": ({ minTrades, run }) =>
      as((p) =>
        unavailable(Effect.gen(function*() {
          const record = yield* runOf(p, run)
          const suggested = yield* Tools.suggestions(record, minTrades)
          return {
            run: record.id,
            strategy: suggested.strategy?.id ?? record.strategyId,
            strategyVersion: suggested.strategy?.version ?? record.strategyVersion,
            minTrades: suggested.minTrades,
            suggestions: suggested.suggestions,
            skipped: suggested.skipped,
            ...(suggested.strategy === undefined ? { strategyDeleted: true as const } : {})
          }
        })).pipe(Effect.withSpan("Chat.suggestions"))
      ),

    "chat.applyRule": ({ run, suggestion }) =>
      as((p) =>
        unavailable(Effect.gen(function*() {
          const record = yield* runOf(p, run)
          const notFound = (reason: string) => new SuggestionNotFound({ run: record.id, suggestion, reason })
          const minTrades = Tools.minTradesOf(suggestion)
          if (minTrades === undefined) {
            return yield* notFound("a suggestion id is <rule id>.<min trades>.<hash>, as chat.suggestions gives it")
          }
          const suggested = yield* Tools.suggestions(record, minTrades)
          // Said before whether the id is one: with the strategy deleted, no suggestion can be applied.
          if (suggested.strategy === undefined) {
            return yield* new StrategyNotFound({ strategy: record.strategyId, deleted: { name: record.strategyName } })
          }
          const found = suggested.suggestions.find((s) => s.id === suggestion)
          if (found === undefined) {
            return yield* notFound("the run does not suggest it now (its trades or its strategy changed since): ask chat.suggestions again")
          }
          // A new version of the strategy as it is now (a rule put meanwhile stays), made holding it,
          // audited as every strategy update is (its audit entry holds the whole body), with the
          // suggestion it came from and, for an admin's apply to another user's run, who applied it.
          const provenance = { by: p.userId, suggestion: { run: record.id, id: found.id } }
          const saved = yield* Strategies.modify(record.owner, suggested.strategy.id, (current): Effect.Effect<Strategy, Conflict | InvalidRequest> => {
            if (current.strategy.rules.some((r) => r.id === found.rule.id)) {
              return Effect.fail(new Conflict({ reason: `the strategy already has a rule ${found.rule.id}` }))
            }
            // The whole strategy decoded again, so that its own checks (the rule set's) apply.
            const encoded = encodeStrategy(current.strategy)
            return decodeStrategy({ ...encoded, rules: [...(encoded.rules ?? []), encodeRule(found.rule)] }).pipe(
              Effect.mapError((error) => new InvalidRequest({ field: "suggestion", reason: reasonOf(error) }))
            )
          }, provenance)
          yield* Effect.logInfo("Chat: a suggested rule was applied").pipe(
            Effect.annotateLogs({ run: record.id, rule: found.rule.id, strategy: saved.id, version: saved.version, by: p.userId })
          )
          return { id: saved.id, name: saved.name, version: saved.version, strategy: saved.strategy }
        })).pipe(Effect.withSpan("Chat.applyRule"))
      )
  }
}))
