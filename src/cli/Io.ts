/**
 * Where the command line reads and writes: stdout, stderr, the terminal a progress bar draws on and
 * the person who answers prompts. The CLI takes it as a value so that tests run the whole command
 * in-process and read back what it printed, and `--json` can keep stdout for the document alone.
 */
import { Console, Effect, type Scope } from "effect"
import * as readline from "node:readline"

/** Questions to the person at the terminal, one line back (trimmed) for each. */
export interface Prompter {
  readonly ask: (question: string) => Effect.Effect<string>
  /** Forget lines typed before now, so that an answer follows the question it answers. */
  readonly discard: Effect.Effect<void>
}

export interface Io {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  /** stdout is a terminal: help may keep its ANSI styles. */
  readonly colors?: boolean
  /** stderr when it is a terminal: where progress bars and prompts go. */
  readonly terminal?: NodeJS.WriteStream
  /** stdout when it is a terminal: where `runs watch` redraws its view in place (else it prints lines). */
  readonly screen?: NodeJS.WriteStream
  /** The keyboard for as long as the scope lasts; absent when stdin is not a terminal. */
  readonly prompter?: Effect.Effect<Prompter, never, Scope.Scope>
  /**
   * What is piped into stdin, as text, up to `limit` characters (more: the first `limit` + 1, so a
   * caller can tell); absent when stdin is a terminal (nobody pipes anything: it would wait for good).
   */
  readonly input?: (limit: number) => Effect.Effect<string>
}

/** stdin read to its end, or to `limit` + 1 characters: whatever is piped in, never held whole past that. */
const pipedInput = (limit: number): Effect.Effect<string> =>
  Effect.async<string>((resume) => {
    let text = ""
    const stdin = process.stdin
    stdin.setEncoding("utf8")
    const done = () => {
      stdin.off("data", onData)
      stdin.off("end", done)
      stdin.off("error", done)
      stdin.pause()
      resume(Effect.succeed(text))
    }
    const onData = (chunk: string) => {
      text += chunk
      if (text.length > limit) {
        text = text.slice(0, limit + 1)
        done()
      }
    }
    stdin.on("data", onData)
    stdin.on("end", done)
    stdin.on("error", done)
    return Effect.sync(() => {
      stdin.off("data", onData)
      stdin.off("end", done)
      stdin.off("error", done)
      stdin.pause()
    })
  })

/**
 * One readline interface for the whole scope: lines typed while no question is pending are queued,
 * not lost (a reason pasted with its "y"), and `discard` drops them when a new question begins.
 */
const terminalPrompter: Effect.Effect<Prompter, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true })
    const lines: Array<string> = []
    let waiting: ((line: string) => void) | undefined
    let closed = false
    const deliver = (line: string) => {
      const resolve = waiting
      if (resolve === undefined) return void lines.push(line)
      waiting = undefined
      resolve(line)
    }
    rl.on("line", deliver)
    // Ctrl-D: every question from now on gets no answer.
    rl.on("close", () => {
      closed = true
      deliver("")
    })
    // readline holds the terminal in raw mode, so Ctrl-C reaches it rather than the process:
    // hand it back as the signal, which interrupts the run like a Ctrl-C anywhere else.
    rl.on("SIGINT", () => void process.kill(process.pid, "SIGINT"))
    const prompter: Prompter = {
      ask: (question) =>
        Effect.async<string>((resume) => {
          if (closed) return resume(Effect.succeed(""))
          rl.setPrompt(question)
          rl.prompt()
          const queued = lines.shift()
          if (queued !== undefined) {
            process.stderr.write(`${queued}\n`)
            return resume(Effect.succeed(queued.trim()))
          }
          waiting = (line) => resume(Effect.succeed(line.trim()))
          return Effect.sync(() => {
            waiting = undefined
          })
        }),
      discard: Effect.sync(() => {
        lines.length = 0
      })
    }
    return { rl, prompter }
  }),
  ({ rl }) => Effect.sync(() => rl.close())
).pipe(Effect.map(({ prompter }) => prompter))

/** The process's streams; prompts read stdin and write on stderr, leaving stdout to the results. */
export const node = (): Io => ({
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  colors: process.stdout.isTTY === true,
  ...(process.stderr.isTTY === true ? { terminal: process.stderr } : {}),
  ...(process.stdout.isTTY === true ? { screen: process.stdout } : {}),
  ...(process.stdin.isTTY === true ? { prompter: terminalPrompter } : { input: pipedInput })
})

// eslint-disable-next-line no-control-regex
export const stripAnsi = (text: string): string => text.replace(/\u001b\[[0-9;]*m/g, "")

/**
 * What a terminal acts on rather than shows: C0 controls but tab and line feed (an ESC starts a
 * sequence that recolours, clears or retitles it), DEL, C1 controls (U+009B is a CSI of its own)
 * and the bidirectional formatting characters, which reorder the text shown after them.
 */
// eslint-disable-next-line no-control-regex
const UNSHOWN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g

/**
 * Text the command line did not write itself — a model's answer, a reason or name from the server
 * — as a terminal should show it: each character it would act on written as its escape (`\u001b`).
 * Names the server takes are checked for them as they are given; this covers what was stored
 * before those checks and what a model says.
 */
export const visible = (text: string): string =>
  text.replace(UNSHOWN, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

/** An `Io` that keeps everything written, for tests; `answers` are the replies to prompts, in order. */
export const capture = (options: { readonly answers?: ReadonlyArray<string>; readonly input?: string } = {}) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const asked: Array<string> = []
  const answers = options.answers === undefined ? undefined : [...options.answers]
  const io: Io = {
    stdout: (text) => void out.push(text),
    stderr: (text) => void err.push(text),
    ...(options.input === undefined ? {} : { input: (limit: number) => Effect.succeed(options.input!.slice(0, limit + 1)) }),
    ...(answers === undefined ? {} : {
      prompter: Effect.succeed<Prompter>({
        ask: (question) =>
          Effect.sync(() => {
            asked.push(question)
            return answers.shift() ?? ""
          }),
        discard: Effect.void
      })
    })
  }
  return { io, stdout: () => out.join(""), stderr: () => err.join(""), asked: () => asked }
}

/**
 * Run `effect` with Effect's `Console` writing to `io` (help from @effect/cli goes through it).
 * Its errors are dropped: @effect/cli prints its own rendering of a parse error there, and the CLI
 * prints the same error as one `swarm: <field>: <reason>` line instead.
 */
export const withConsole = <A, E, R>(io: Io, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Console.consoleWith((base) => {
    const log = (...args: ReadonlyArray<unknown>) =>
      Effect.sync(() => {
        const text = args.map(String).join(" ")
        io.stdout(`${io.colors === true ? text : stripAnsi(text)}\n`)
      })
    const console: Console.Console = {
      ...base,
      log,
      info: log,
      error: () => Effect.void,
      warn: () => Effect.void
    }
    return Console.withConsole(effect, console)
  })
