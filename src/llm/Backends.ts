/**
 * Choosing the language-model backend at start-up: Ollama when it answers at the configured host,
 * else the offline model, with a description that says which and why (start-up logs it, `/health`
 * and a run's metadata repeat it). Read from `OLLAMA_HOST` and `SWARM_LLM`.
 */
import { Config, ConfigError, Effect, Either, type Layer } from "effect"
import { shownUrl } from "../internal/credentials.js"
import type { BackendInfo, LanguageModel } from "./LanguageModel.js"
import * as Offline from "./Offline.js"
import * as Ollama from "./Ollama.js"

export const defaultHost = "http://127.0.0.1:11434"

export interface SelectOptions {
  /** Where Ollama is expected (`http://127.0.0.1:11434`). */
  readonly host: string
  /** Use the offline model without asking Ollama (`SWARM_LLM=offline`). */
  readonly forceOffline?: boolean
  /** How long the probe waits for Ollama's model list. */
  readonly probeTimeoutMillis?: number
}

export interface Selected {
  readonly layer: Layer.Layer<LanguageModel>
  readonly info: BackendInfo
  /** The models Ollama has (none offline). */
  readonly models: ReadonlyArray<string>
}

const offlineRole = "LLM agents answer with the deterministic offline analyst"

/** Probes Ollama at `host` (unless forced offline) and picks the backend. Never fails: offline is the fallback. */
export const select = (options: SelectOptions): Effect.Effect<Selected> => {
  // The password, if the host has one (sent as a Basic header), is never shown.
  const shown = shownUrl(options.host)
  if (options.forceOffline === true) {
    return Effect.succeed(offline(`offline: forced by SWARM_LLM=offline, Ollama at ${shown} not asked; ${offlineRole}`))
  }
  return Ollama.probe(options.host, options.probeTimeoutMillis).pipe(
    Effect.match({
      onFailure: (error) =>
        offline(`offline: no Ollama at ${shown} (${error._tag === "LlmUnavailable" ? error.reason : `${error.status}: ${error.reason}`}); ${offlineRole}`),
      onSuccess: (models): Selected => {
        const info: BackendInfo = { kind: "ollama", description: `ollama at ${shown} (${listed(models)})` }
        return { layer: Ollama.layer({ host: options.host, description: info.description }), info, models }
      }
    }),
    Effect.withSpan("Backends.select", { attributes: { host: shown } })
  )
}

const offline = (description: string): Selected => ({
  layer: Offline.layer(description),
  info: { kind: "offline", description },
  models: []
})

const shown = 5

const listed = (models: ReadonlyArray<string>): string => {
  if (models.length === 0) return "no models pulled yet: `ollama pull llama3.2:3b`"
  const names = models.slice(0, shown).join(", ") + (models.length > shown ? ", …" : "")
  return `${models.length} model${models.length === 1 ? "" : "s"}: ${names}`
}

/**
 * Ollama's address as its own client reads it: a bare `host:port` (or `host`, or `:port`) is plain
 * HTTP, on port 11434 when none is given. Returns the normalised URL (no trailing slash) or why not.
 */
export const parseHost = (given: string): Either.Either<string, string> => {
  // Errors quote it with its password masked.
  const raw = shownUrl(given)
  let text = given.trim()
  if (text === "") return Either.right(defaultHost)
  const explicit = text.includes("://")
  if (text.startsWith(":")) text = `http://127.0.0.1${text}`
  else if (!explicit) text = `http://${text}`
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return Either.left(`not a URL: ${raw} (expected http://host:port or host:port)`)
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left(`not an http(s) URL: ${raw} (expected http://host:port or host:port)`)
  }
  if (url.hostname === "") return Either.left(`names no host: ${raw} (expected http://host:port or host:port)`)
  if (!explicit && url.port === "") url.port = "11434"
  const path = url.pathname.replace(/\/+$/, "")
  const auth = url.username !== "" ? `${url.username}${url.password !== "" ? `:${url.password}` : ""}@` : ""
  return Either.right(`${url.protocol}//${auth}${url.host}${path}`)
}

/**
 * `OLLAMA_HOST` (default `http://127.0.0.1:11434`; empty counts as unset) and `SWARM_LLM`
 * (`auto`, the default: Ollama if it answers; `offline`: never ask it). Ready for `select`.
 */
export const config: Config.Config<{ readonly host: string; readonly forceOffline: boolean }> = Config.all({
  host: Config.string("OLLAMA_HOST").pipe(
    Config.withDefault(defaultHost),
    Config.mapOrFail((raw) =>
      Either.mapLeft(parseHost(raw), (why) => ConfigError.InvalidData(["OLLAMA_HOST"], why))
    )
  ),
  forceOffline: Config.literal("auto", "offline")("SWARM_LLM").pipe(
    Config.withDefault("auto" as const),
    Config.map((mode) => mode === "offline")
  )
})

/** `select` as configured. */
export const fromConfig: Effect.Effect<Selected, ConfigError.ConfigError> = Effect.flatMap(config, select)
