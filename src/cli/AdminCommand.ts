/**
 * `swarm admin …`: a server's users and API keys, for an admin (anyone else is refused by the
 * server): list users, create one (its first key printed once), issue a key, list a user's keys,
 * revoke one, make a user an admin or a plain user, disable and enable them, and the platform's
 * figures. Keys are shown once, when made; the server keeps only their hashes.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option, ParseResult, Schema } from "effect"
import { type ApiKey, UserName } from "../../schemas/Auth.js"
import type { ChangedUser } from "../../schemas/Rpc.js"
import { UsageError } from "./CliError.js"
import { choice, json } from "./Flags.js"
import { type Io, visible } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RunRef from "./RunRef.js"
import { table, wallTime } from "./RunsView.js"
import type { Wiring } from "./Wiring.js"

const userArg = Args.text({ name: "user" }).pipe(Args.withDescription("The user: their name or id (usr_…)."))
const role = choice("role", ["admin", "user"])

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/** A name, id or label as the contract takes it (1 to 200 characters, no control characters). */
const text = (field: string, value: string, max = 200) => {
  const reason = value.trim() === ""
    ? "is empty"
    : value.length > max || CONTROL.test(value)
    ? `${RunRef.shown(value, 24)} is not one (at most ${max} characters, no control characters)`
    : undefined
  return reason === undefined ? Effect.succeed(value) : Effect.fail(new UsageError({ field, reason }))
}

/**
 * A new user's name as the server takes it (`UserName`), refused here in the schema's own words:
 * the client would not send it, and its encoding error was reported as the server failing.
 */
const userName = (value: string) =>
  Schema.decode(UserName)(value).pipe(
    Effect.mapError((error) => new UsageError({ field: "<name>", reason: ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.message ?? "is not a user name" }))
  )

const users = (io: Io, wiring: Wiring) =>
  Command.make("users", { json: json("Print the users as one JSON array on stdout."), ...Remote.options }, (flags) =>
    Remote.withRemote(flags, wiring)((remote) =>
      Effect.gen(function*() {
        const all = yield* remote.client.admin.users().pipe(remote.call("user"))
        if (flags.json) return io.stdout(`${JSON.stringify(all, null, 2)}\n`)
        const out = table(["name", "id", "role", "status"], ["left", "left", "left", "left"])
        for (const u of all) out.push([u.name, u.id, u.role, u.disabled ? "disabled" : "enabled"])
        io.stdout(`${out.toString()}\n`)
      })
    ).pipe(Effect.withSpan("swarm.admin.users"))).pipe(Command.withDescription("List the server's users: name, id, role, enabled or disabled."))

const createUser = (io: Io, wiring: Wiring) =>
  Command.make("create-user", {
    name: Args.text({ name: "name" }).pipe(Args.withDescription("The new user's name.")),
    role: role.pipe(Options.map(Option.getOrElse(() => "user" as const)), Options.withDescription("Their role (default user).")),
    json: json("Print the user and their key as one JSON object on stdout."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const name = yield* Effect.flatMap(text("<name>", flags.name), userName)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const created = yield* remote.client.admin.createUser({ name, role: flags.role }).pipe(remote.call("user"))
          io.stdout(
            flags.json
              ? `${JSON.stringify(created, null, 2)}\n`
              : `created ${created.user.role} ${created.user.name} (${created.user.id}). Their API key, shown this once:\n\n  ${created.key}\n`
          )
        })
      )
    }).pipe(Effect.withSpan("swarm.admin.create-user"))).pipe(Command.withDescription("Create a user and their first API key (printed once)."))

const issueKey = (io: Io, wiring: Wiring) =>
  Command.make("issue-key", {
    user: userArg,
    label: Options.text("label").pipe(Options.optional, Options.withDescription("What the key is for (at most 100 characters).")),
    json: json("Print the key and its record as one JSON object on stdout."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const user = yield* text("<user>", flags.user)
      const label = Option.isSome(flags.label) ? yield* text("--label", flags.label.value, 100) : undefined
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const issued = yield* remote.client.admin.issueKey(label === undefined ? { user } : { user, label }).pipe(remote.call("user"))
          io.stdout(flags.json ? `${JSON.stringify({ user, key: issued.key }, null, 2)}\n` : `a new API key for ${user}, shown this once:\n\n  ${issued.key}\n`)
        })
      )
    }).pipe(Effect.withSpan("swarm.admin.issue-key"))).pipe(Command.withDescription("Issue another API key to a user (printed once)."))

// A label stored before labels were checked (`KeyLabel`) is shown escaped: a U+202E in one reversed the rest of its row.
const keyRow = (k: ApiKey) => [k.id, `${k.prefix}…`, visible(k.label), wallTime(k.createdAt), k.lastUsedAt === null ? "—" : wallTime(k.lastUsedAt), k.revokedAt === null ? "—" : wallTime(k.revokedAt)]

const keys = (io: Io, wiring: Wiring) =>
  Command.make("keys", { user: userArg, json: json("Print the keys as one JSON array on stdout."), ...Remote.options }, (flags) =>
    Effect.gen(function*() {
      const user = yield* text("<user>", flags.user)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const all = yield* remote.client.admin.keys({ user }).pipe(remote.call("user"))
          if (flags.json) return io.stdout(`${JSON.stringify(all, null, 2)}\n`)
          if (all.length === 0) return io.stdout(`${user} has no API keys\n`)
          const out = table(["id", "key", "label", "created", "last used", "revoked"], ["left", "left", "left", "left", "left", "left"])
          for (const k of all) out.push(keyRow(k))
          io.stdout(`${out.toString()}\n`)
        })
      )
    }).pipe(Effect.withSpan("swarm.admin.keys"))).pipe(
    Command.withDescription("List a user's API keys, revoked ones too: id, prefix, label, when made, last used and revoked (never the key).")
  )

const revokeKey = (io: Io, wiring: Wiring) =>
  Command.make("revoke-key", {
    keyId: Args.text({ name: "key-id" }).pipe(Args.withDescription("The key's id (key_…), as swarm admin keys lists it.")),
    json: json("Print the revoked key's record as one JSON object on stdout."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const key = yield* text("<key-id>", flags.keyId)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const revoked = yield* remote.client.admin.revokeKey({ key }).pipe(remote.call("key"))
          io.stdout(flags.json ? `${JSON.stringify(revoked, null, 2)}\n` : `revoked ${revoked.id} (${revoked.prefix}…): refused from now on (by a server sharing no Redis with this one, within 30 s for reads)\n`)
        })
      )
    }).pipe(Effect.withSpan("swarm.admin.revoke-key"))).pipe(Command.withDescription("Revoke an API key: refused from its next request on (a server sharing no Redis with this one may serve it reads for 30 s more). The last key of the last admin with one is kept."))

/** What `set-user` says of the user as changed, and of the paper runs disabling them paused (older servers say none). */
export const describeChanged = (changed: typeof ChangedUser.Type): string =>
  `${changed.name} is ${changed.role === "admin" ? "an admin" : "a user"}, ${changed.disabled ? "disabled" : "enabled"}` +
  (changed.paused === undefined
    ? ""
    : changed.paused.length === 0
    ? "; none of their paper runs was running"
    : `; paused their running paper run${changed.paused.length === 1 ? "" : "s"} ${changed.paused.map((run) => `${run.ref} (${run.id})`).join(", ")} (they stay paused until resumed)`)

const setUser = (io: Io, wiring: Wiring) =>
  Command.make("set-user", {
    user: userArg,
    role: role.pipe(Options.withDescription("Make them an admin or a plain user.")),
    disable: Options.boolean("disable").pipe(
      Options.withDescription("Disable them: their keys are refused from their next request on, their running paper runs are paused (and said); what they own stays.")
    ),
    enable: Options.boolean("enable").pipe(Options.withDescription("Enable them again (their paused runs stay paused until resumed).")),
    json: json("Print the user as changed as one JSON object on stdout."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const user = yield* text("<user>", flags.user)
      if (flags.disable && flags.enable) return yield* new UsageError({ field: "--disable", reason: "and --enable together: choose one" })
      if (Option.isNone(flags.role) && !flags.disable && !flags.enable) {
        return yield* new UsageError({ field: "set-user", reason: "nothing to change: give --role, --disable or --enable" })
      }
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const changed = yield* remote.client.admin.setUser({
            user,
            ...(Option.isSome(flags.role) ? { role: flags.role.value } : {}),
            ...(flags.disable ? { disabled: true } : flags.enable ? { disabled: false } : {})
          }).pipe(remote.call("user"))
          io.stdout(flags.json ? `${JSON.stringify(changed, null, 2)}\n` : `${describeChanged(changed)}\n`)
        })
      )
    }).pipe(Effect.withSpan("swarm.admin.set-user"))).pipe(
    Command.withDescription("Change a user's role, or disable or enable them. The last enabled admin with an API key stays one.")
  )

const stats = (io: Io, wiring: Wiring) =>
  Command.make("stats", { json: json("Print the figures as one JSON object on stdout."), ...Remote.options }, (flags) =>
    Remote.withRemote(flags, wiring)((remote) =>
      Effect.gen(function*() {
        const s = yield* remote.client.admin.stats().pipe(remote.call("server"))
        io.stdout(
          flags.json
            ? `${JSON.stringify(s, null, 2)}\n`
            : `users ${s.users}, strategies ${s.strategies}, runs ${s.runs} (${s.liveRuns} live in this server process), events ${s.events}\n`
        )
      })
    ).pipe(Effect.withSpan("swarm.admin.stats"))).pipe(Command.withDescription("The platform's figures: users, strategies, runs, live runs, events."))

export const SUBCOMMANDS = ["users", "create-user", "issue-key", "keys", "revoke-key", "set-user", "stats"] as const

export const command = (io: Io, wiring: Wiring) =>
  Command.make("admin").pipe(
    Command.withDescription("A server's users and API keys, for its admins: users, create-user, issue-key, keys, revoke-key, set-user, stats."),
    Command.withSubcommands([users(io, wiring), createUser(io, wiring), issueKey(io, wiring), keys(io, wiring), revokeKey(io, wiring), setUser(io, wiring), stats(io, wiring)])
  )
