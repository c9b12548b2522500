/**
 * Where the commands that talk to a server find it and their API key: `--server` / `--key`, else
 * `SWARM_SERVER` / `SWARM_API_KEY`, else the file `swarm login` wrote (`SWARM_CONFIG`, default
 * `~/.config/swarm/config.json`, mode 0600). A key is only ever sent to the server it was given
 * for: the file's key goes with the file's server, never to a server named elsewhere.
 */
import { Config, type ConfigProvider, Effect, Either, Option, ParseResult, Schema } from "effect"
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import * as os from "node:os"
import * as Path from "node:path"
import { UsageError } from "./CliError.js"

/** What `swarm login` keeps. */
export const ConfigFile = Schema.Struct({ server: Schema.String, key: Schema.String })
export type ConfigFile = typeof ConfigFile.Type

/** A config file as read: where it is and what it says. */
export interface Saved extends ConfigFile {
  readonly path: string
}

/** What each place says, before any is chosen. */
export interface Sources {
  readonly flags: { readonly server?: string | undefined; readonly key?: string | undefined }
  readonly env: { readonly server?: string | undefined; readonly key?: string | undefined }
  readonly file: Option.Option<Saved>
}

/** The server to talk to, and the key for it; each says where it came from, for error lines. */
export interface Target {
  /** `http(s)://host[:port][/path]`, without a trailing slash. */
  readonly server: string
  readonly serverFrom: string
  readonly key: string | undefined
  readonly keyFrom: string | undefined
}

const present = (text: string | undefined): text is string => text !== undefined && text.trim() !== ""

/**
 * A server as people type it, as a base URL: `127.0.0.1:7070` means `http://127.0.0.1:7070`.
 * Refused: other schemes, credentials in the URL (the key goes in a header), queries, fragments.
 */
export const normalizeServer = (text: string): Either.Either<string, string> => {
  const trimmed = text.trim()
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(trimmed) ? trimmed : `http://${trimmed}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    return Either.left(`expected a URL such as http://127.0.0.1:7070, got ${JSON.stringify(text)}`)
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left(`expected an http:// or https:// URL, got ${JSON.stringify(text)}`)
  }
  if (url.username !== "" || url.password !== "") return Either.left("a server URL carries no credentials: give the key with --key")
  if (url.search !== "" || url.hash !== "") return Either.left(`a server URL has no query or fragment, got ${JSON.stringify(text)}`)
  return Either.right(`${url.origin}${url.pathname.replace(/\/+$/, "")}`)
}

/**
 * Choose the server and key, flag before environment before file. No server anywhere: none (the
 * commands that can work without one do). A server that is not a URL is refused, naming where it
 * was found.
 */
export const resolve = (sources: Sources): Either.Either<Option.Option<Target>, UsageError> => {
  const { env, file, flags } = sources
  const named = present(flags.server)
    ? Option.some({ text: flags.server, from: "--server" })
    : present(env.server)
    ? Option.some({ text: env.server, from: "SWARM_SERVER" })
    : Option.map(file, (saved) => ({ text: saved.server, from: `${saved.path}: server` }))
  if (Option.isNone(named)) return Either.right(Option.none())
  const server = normalizeServer(named.value.text)
  if (Either.isLeft(server)) return Either.left(new UsageError({ field: named.value.from, reason: server.left }))
  const fromFile = Option.flatMap(file, (saved) =>
    Either.getOrUndefined(normalizeServer(saved.server)) === server.right ? Option.some(saved) : Option.none())
  const key = present(flags.key)
    ? { key: flags.key.trim(), keyFrom: "--key" }
    : present(env.key)
    ? { key: env.key.trim(), keyFrom: "SWARM_API_KEY" }
    : Option.match(fromFile, {
      onNone: () => ({ key: undefined, keyFrom: undefined }),
      onSome: (saved) => ({ key: saved.key, keyFrom: `${saved.path}: key` })
    })
  return Either.right(Option.some({ server: server.right, serverFrom: named.value.from, ...key }))
}

// ---------------------------------------------------------------------------------------------
// The environment and the file

export interface Environment {
  readonly server: string | undefined
  readonly key: string | undefined
  /** Where `login` writes and everything reads the config file. */
  readonly configPath: string
}

const variable = (name: string) => Config.option(Config.string(name)).pipe(Config.map(Option.getOrUndefined))

/** The default place of the config file: `$XDG_CONFIG_HOME/swarm`, else `~/.config/swarm`. */
const defaultPath = (xdg: string | undefined) =>
  Path.join(present(xdg) ? xdg : Path.join(os.homedir(), ".config"), "swarm", "config.json")

/**
 * Read SWARM_SERVER, SWARM_API_KEY and SWARM_CONFIG once, from `provider` when given (tests give
 * their own, so that no developer's login leaks into them), else from the process's environment.
 */
export const environment = (provider?: ConfigProvider.ConfigProvider): Effect.Effect<Environment, UsageError> => {
  const read = Config.all({
    server: variable("SWARM_SERVER"),
    key: variable("SWARM_API_KEY"),
    config: variable("SWARM_CONFIG"),
    xdg: variable("XDG_CONFIG_HOME")
  }).pipe(
    Effect.map(({ config, key, server, xdg }): Environment => ({
      server,
      key,
      configPath: present(config) ? Path.resolve(config) : defaultPath(xdg)
    })),
    Effect.mapError((error) => new UsageError({ field: "configuration", reason: String(error).replace(/\s*\n\s*/g, " ") }))
  )
  return provider === undefined ? read : Effect.withConfigProvider(read, provider)
}

const errnoOf = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code

/** The config file, if there is one; one that cannot be read or decoded is an error naming it. */
export const readFileAt = (path: string): Effect.Effect<Option.Option<Saved>, UsageError> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (error) => error
  }).pipe(
    Effect.map(Option.some),
    Effect.catchAll((error) =>
      errnoOf(error) === "ENOENT"
        ? Effect.succeed(Option.none<string>())
        : Effect.fail(new UsageError({ field: path, reason: `cannot read it: ${error instanceof Error ? error.message : String(error)}` }))
    ),
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeed(Option.none<Saved>()),
      onSome: (text) =>
        Effect.try({ try: () => JSON.parse(text) as unknown, catch: () => new UsageError({ field: path, reason: "is not JSON: run swarm login again" }) })
          .pipe(
            Effect.flatMap((raw) =>
              Schema.decodeUnknown(ConfigFile)(raw).pipe(
                Effect.mapError((error) =>
                  new UsageError({
                    field: path,
                    reason: `is not a swarm config file (${ParseResult.TreeFormatter.formatErrorSync(error).split("\n").join(" ")}): run swarm login again`
                  })
                )
              )
            ),
            Effect.map((saved) => Option.some({ ...saved, path }))
          )
    }))
  )

/**
 * Write the config file readable by its owner only (0600, its folder 0700 when made here): it
 * holds a key. Written beside and renamed over, so a reader never sees half a file.
 */
export const writeFileAt = (path: string, config: ConfigFile): Effect.Effect<void, UsageError> =>
  Effect.tryPromise({
    try: async () => {
      await mkdir(Path.dirname(path), { recursive: true, mode: 0o700 })
      const temporary = `${path}.${process.pid}.tmp`
      await writeFile(temporary, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
      // The mode of a new file is cut by the umask, never widened; this makes it exactly 0600.
      await chmod(temporary, 0o600)
      await rename(temporary, path)
    },
    catch: (error) => new UsageError({ field: path, reason: `cannot write it: ${error instanceof Error ? error.message : String(error)}` })
  })

/** Remove the config file; whether there was one. */
export const removeFileAt = (path: string): Effect.Effect<boolean, UsageError> =>
  Effect.tryPromise({
    try: async () => {
      try {
        await rm(path)
        return true
      } catch (error) {
        if (errnoOf(error) === "ENOENT") return false
        throw error
      }
    },
    catch: (error) => new UsageError({ field: path, reason: `cannot remove it: ${error instanceof Error ? error.message : String(error)}` })
  })

/** Every source read, then resolved: the target of a command given `flags`. */
export const target = (
  flags: Sources["flags"],
  provider?: ConfigProvider.ConfigProvider
): Effect.Effect<Option.Option<Target>, UsageError> =>
  Effect.gen(function*() {
    const env = yield* environment(provider)
    // The file is read only when it could matter: flags and environment may say it all.
    const needsFile = !present(flags.server) && !present(env.server) || !present(flags.key) && !present(env.key)
    const file = needsFile ? yield* readFileAt(env.configPath) : Option.none<Saved>()
    return yield* resolve({ flags, env: { server: env.server, key: env.key }, file })
  })
