/**
 * `swarm login` and `swarm logout`: keep a server and its API key in the config file
 * (`SWARM_CONFIG`, default `~/.config/swarm/config.json`, mode 0600), so that later commands need
 * neither flag. `login` first asks the server something cheap with the key, so a wrong URL or a
 * refused key is said at once and nothing is saved.
 */
import { Command } from "@effect/cli"
import { Effect, Option } from "effect"
import { UsageError } from "./CliError.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RemoteConfig from "./RemoteConfig.js"
import type { Wiring } from "./Wiring.js"

export const login = (io: Io, wiring: Wiring) =>
  Command.make("login", Remote.options, (flags) =>
    Effect.gen(function*() {
      const env = yield* RemoteConfig.environment(wiring.environment)
      // What to log in to comes from the flags or the environment: the file is what is being written.
      const resolved = yield* RemoteConfig.resolve({
        flags: { server: Option.getOrUndefined(flags.server), key: Option.getOrUndefined(flags.key) },
        env: { server: env.server, key: env.key },
        file: Option.none()
      })
      if (Option.isNone(resolved)) return yield* new UsageError({ field: "--server", reason: "is required: the server to log in to (http://host:port)" })
      const target = resolved.value
      if (target.key === undefined) return yield* new UsageError({ field: "--key", reason: `is required: the API key for ${target.server}` })
      const strategies = yield* Effect.scoped(Effect.gen(function*() {
        const remote = yield* Remote.connect(target)
        return yield* remote.client.strategies.list().pipe(remote.call("login"))
      }))
      yield* RemoteConfig.writeFileAt(env.configPath, { server: target.server, key: target.key })
      io.stdout(
        `logged in to ${target.server}: the key works (${strategies.length === 1 ? "1 strategy" : `${strategies.length} strategies`}); ` +
          `saved to ${env.configPath}\n`
      )
    }).pipe(Effect.withSpan("swarm.login"))).pipe(
    Command.withDescription(
      "Check an API key against a server and keep both in the config file (SWARM_CONFIG, default ~/.config/swarm/config.json, mode 0600)."
    )
  )

export const logout = (io: Io, wiring: Wiring) =>
  Command.make("logout", {}, () =>
    Effect.gen(function*() {
      const env = yield* RemoteConfig.environment(wiring.environment)
      const removed = yield* RemoteConfig.removeFileAt(env.configPath)
      io.stdout(removed ? `logged out: removed ${env.configPath}\n` : `not logged in: there is no ${env.configPath}\n`)
    }).pipe(Effect.withSpan("swarm.logout"))).pipe(
    Command.withDescription("Forget the server and key `swarm login` kept (remove the config file).")
  )
