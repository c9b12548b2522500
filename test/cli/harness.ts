/**
 * Running the command line in-process for tests: its exit code and everything it printed. A test
 * that does not give a database gets one that refuses to open (and counts the attempts), and its
 * `backtest` runs with `--no-store` — so no test starts a database it does not need, and one that
 * would is caught. A test that does not give an environment gets one with no server and a config
 * file that does not exist — so a developer's `swarm login` never reaches a test.
 */
import { NodeContext } from "@effect/platform-node"
import { ConfigProvider, Effect, Layer } from "effect"
import type { AnyModel } from "../../agents/analysts/Model.js"
import * as Cli from "../../src/cli/Cli.js"
import * as Io from "../../src/cli/Io.js"
import type { Wiring } from "../../src/cli/Wiring.js"
import { DatabaseUnavailable } from "../../src/store/StoreError.js"

let attempts = 0

/** A database that cannot be opened: for commands that must not open one. */
export const noDatabase: NonNullable<Wiring["store"]> = Layer.suspend(() => {
  attempts++
  return Layer.fail(
    new DatabaseUnavailable({ backend: { kind: "embedded", dataDir: "(none)" }, reason: "this test gives no database" })
  )
})

/** How many times `noDatabase` was asked to open, so far. */
export const openAttempts = () => attempts

export interface Options {
  readonly answers?: ReadonlyArray<string>
  /** What is piped into stdin; without it, stdin is a terminal (nothing piped). */
  readonly input?: string
  readonly registry?: ReadonlyMap<string, AnyModel>
  readonly terminal?: NodeJS.WriteStream
  /** The database; without it `noDatabase`, and `backtest` gets `--no-store`. */
  readonly store?: Wiring["store"]
  /** SWARM_SERVER, SWARM_API_KEY, SWARM_CONFIG as the remote commands see them; without it, none configured. */
  readonly environment?: Readonly<Record<string, string>>
  /** The language models of LLM agents; without it, what the environment configures. */
  readonly llm?: Wiring["llm"]
}

/** A config file no test writes: with it, no server is configured unless a test says so. */
export const NO_CONFIG = "/nonexistent/swarm-test/config.json"

export interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
  readonly asked: ReadonlyArray<string>
}

/** Run the command line in-process on `argv`: its exit code and everything it printed. */
export const swarm = (argv: ReadonlyArray<string>, options: Options = {}): Effect.Effect<Ran> =>
  Effect.gen(function*() {
    const captured = Io.capture({
      ...(options.answers === undefined ? {} : { answers: options.answers }),
      ...(options.input === undefined ? {} : { input: options.input })
    })
    const io = options.terminal === undefined ? captured.io : { ...captured.io, terminal: options.terminal }
    // Not with --help, which @effect/cli only honours on its own.
    const args = options.store === undefined && argv[0] === "backtest" && !argv.some((a) => ["--no-store", "--help", "-h"].includes(a))
      ? ["backtest", "--no-store", ...argv.slice(1)]
      : argv
    const code = yield* Cli.run(args, io, {
      ...(options.registry === undefined ? {} : { registry: options.registry }),
      ...(options.llm === undefined ? {} : { llm: options.llm }),
      store: options.store ?? noDatabase,
      environment: ConfigProvider.fromMap(new Map(Object.entries({ SWARM_CONFIG: NO_CONFIG, ...options.environment })))
    })
    return { code, stdout: captured.stdout(), stderr: captured.stderr(), asked: captured.asked() }
  }).pipe(Effect.provide(NodeContext.layer))

export const lines = (text: string) => text.split("\n").filter((line) => line !== "")

/** A terminal on stderr, as far as cli-progress can tell: what was drawn on it is kept. */
export const fakeTerminal = () => {
  const drawn: Array<string> = []
  const stream = {
    isTTY: true,
    columns: 120,
    rows: 40,
    write: (chunk: unknown, callback?: unknown) => {
      drawn.push(String(chunk))
      if (typeof callback === "function") callback()
      return true
    }
  }
  return { stream: stream as unknown as NodeJS.WriteStream, drawn: () => drawn.join("") }
}
