/**
 * Following a run's chat from a position, the one way both of its streams resume: the SSE route
 * (`Last-Event-ID`, ChatSse.ts) and `chat.follow` over RPC (ChatHandlers.ts). A follower gives the
 * chunk it had last, `<question>.<index>`, and gets what came after it — the rest of that answer and
 * every answer since, as long as the server holds them (SystemAgent.ts `Feed.follow`: an answer is
 * kept `KEEP_ENDED_MILLIS` after it ends) — then every chunk live, none missed and none twice; where
 * the server does not hold all that came after it, `Missed` says so first (`chat.history` has it).
 */
import { Effect, Either, Mailbox, type Scope, Stream } from "effect"
import { KEEP_ENDED_MILLIS, type SystemAgent } from "../../agents/system/SystemAgent.js"
import { type ChatChunk, type ChatFollowed, type ChatPosition, type ChatWatchOverflow, positionOf } from "../../schemas/Chat.js"
import type { RunId } from "../../schemas/Ids.js"
import { InvalidRequest } from "../../schemas/Rpc.js"

/**
 * A position as a follower gives it (`field`: where, for the refusal): `<question>.<index>` as the
 * chunks' ids are — `question` from 1, `index` from 0; empty or absent, none (follow from now).
 */
export const position = (text: string | undefined, field: string): Either.Either<ChatPosition | undefined, InvalidRequest> => {
  if (text === undefined || text.trim() === "") return Either.right(undefined)
  const match = /^(\d{1,10})\.(\d{1,10})$/.exec(text.trim())
  const at = match === null ? undefined : { question: Number(match[1]), index: Number(match[2]) }
  return at === undefined || at.question < 1 || !Number.isSafeInteger(at.question) || !Number.isSafeInteger(at.index)
    ? Either.left(
      new InvalidRequest({
        field,
        reason: `must be <question>.<index> as the chunks' ids are (question from 1, index from 0), not ${JSON.stringify(text.slice(0, 40))}`
      })
    )
    : Either.right(at)
}

/** Whether `chunk` comes after `after` in the chat. */
const isAfter = (after: ChatPosition | undefined) => (chunk: ChatChunk): boolean =>
  after === undefined || chunk.question > after.question || (chunk.question === after.question && chunk.index > after.index)

/** What `Missed` says: where the follower stood, and where to read what it may not have had. */
export const missedReason = (run: string, after: ChatPosition): string =>
  `this server no longer holds the chat of run ${run} after ${positionOf(after)} (it keeps an answer ${
    Math.round(KEEP_ENDED_MILLIS / 60_000)
  } minutes after it ends): what came after it until now may be missed; chat.history has every answer`

/**
 * The chat of `run` after `after` (none: from the answer in progress's start), then live, until
 * the scope closes or the follower falls more than its buffer behind (`ChatWatchOverflow`).
 * Subscribed when the scope opens. The run's ownership is the caller's to check.
 */
export const follow = (
  agent: SystemAgent["Type"],
  run: RunId,
  after: ChatPosition | undefined
): Effect.Effect<Stream.Stream<ChatFollowed, ChatWatchOverflow>, never, Scope.Scope> =>
  Effect.map(agent.follow(run, after), ({ box, held, missed }) => {
    const notice: ReadonlyArray<ChatFollowed> = missed && after !== undefined
      ? [{ _tag: "Missed", after: positionOf(after), reason: missedReason(run, after) }]
      : []
    // The live chunks at or before `after` left out too: a follower may have read another server ahead of this one.
    return Stream.concat(Stream.fromIterable([...notice, ...held]), Stream.filter(Mailbox.toStream(box), isAfter(after)))
  })
