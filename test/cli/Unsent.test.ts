/**
 * A request the client cannot encode is never sent: @effect/rpc reported it as a defect carrying
 * the payload schema's whole tree, which the command line printed as the server failing (exit 1).
 * It is bad input: one line naming the argument or field and why, exit 2, whether or not a server
 * is there (none listens here: nothing is sent).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema, Stream } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import * as Remote from "../../src/cli/Remote.js"
import { lines, swarm } from "./harness.js"

/** A server nobody runs: the port range of this checkout's tests, never listened on here. */
const NOWHERE = "http://127.0.0.1:7469"
const KEY = `sk_${"a".repeat(43)}`

describe("a request the client cannot encode", () => {
  it.live("admin create-user: a name the server does not take is refused here, in UserName's words, exit 2", () =>
    Effect.gen(function*() {
      const environment = { SWARM_SERVER: NOWHERE, SWARM_API_KEY: KEY }
      const spaced = yield* swarm(["admin", "create-user", "bad name"], { environment })
      expect([spaced.code, lines(spaced.stderr)]).toEqual([2, ["swarm: <name>: a user name is 1 to 64 letters, digits or . _ -, not U+0020 at position 4"]])
      // An invisible character: the name looked right, and the message said nothing of what was wrong.
      const hidden = yield* swarm(["admin", "create-user", "ali\u200bce"], { environment })
      expect([hidden.code, lines(hidden.stderr)]).toEqual([2, ["swarm: <name>: a user name is 1 to 64 letters, digits or . _ -, not U+200B at position 4"]])
      const idLike = yield* swarm(["admin", "create-user", "usr_000000000000"], { environment })
      expect([idLike.code, lines(idLike.stderr)]).toEqual([2, ["swarm: <name>: a user name must not look like a user id (usr_ and 12 hex digits)"]])
    }))

  it.scoped("any call: a payload that does not encode is a UsageError naming its field, not the server failing", () =>
    Effect.gen(function*() {
      const remote = yield* Remote.connect({ server: NOWHERE, serverFrom: "--server", key: KEY, keyFrom: "--key" })
      const request = yield* Effect.flip(remote.client.admin.createUser({ name: "bad name" as never, role: "user" }).pipe(remote.call("user")))
      expect(request).toMatchObject({ _tag: "UsageError", field: "name", reason: "a user name is 1 to 64 letters, digits or . _ -, not U+0020 at position 4" })
      // A payload whose schema transforms (defaults): checked by its type side as the request is made.
      const strategy = Schema.decodeUnknownSync(Strategy)({ name: "s", symbols: ["ACME"], agents: [{ type: "sma_crossover" }] })
      const nameless = yield* Effect.flip(remote.client.strategies.create({ strategy: { ...strategy, name: "" } }).pipe(remote.call("strategy")))
      expect(nameless).toMatchObject({ _tag: "UsageError", field: "strategy.name", reason: "must not be empty" })
      // A streaming call too (its payload was checked as it was called, and the throw was "internal error", exit 1).
      const streamed = yield* Effect.flip(Stream.runDrain(remote.client.runs.events({ run: "" as never }).pipe(remote.follow("run"))))
      expect(streamed).toMatchObject({ _tag: "UsageError", field: "run", reason: "expected a string at least 1 character(s) long, got \"\"" })
      const since = yield* Effect.flip(Stream.runDrain(remote.client.runs.events({ run: "r", since: -1 as never }).pipe(remote.follow("run"))))
      expect(since).toMatchObject({ _tag: "UsageError", field: "since" })
      // An answer that does not decode is no input's fault.
      expect(Remote.unsent(yield* Effect.flip(Schema.decodeUnknown(Strategy)({})))).toBeUndefined()
    }))
})
