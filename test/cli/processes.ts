/**
 * The real `swarm` binary in a process group of its own (bin/swarm.js starts a second node, and a
 * server its embedded database), tracked so a test file can kill every group it started when it
 * ends — a failed or timed-out test must not leave a server running.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** A `swarm serve` started by `ProcessGroups.serve`: its base URL, its output so far, its exit code (0 for a stop it was asked for: SIGINT, SIGTERM). */
export interface Served {
  readonly child: ChildProcess
  readonly base: string
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<number | null>
}

/** What a finished `swarm` command said: its exit code (128 when a signal ended it), stdout and stderr. */
export interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** A `swarm` command started and still going, maybe: what it has printed so far, and its end. */
export interface Running {
  readonly stdout: () => string
  /** Its end; if this is interrupted, the group is killed. */
  readonly ran: Effect.Effect<Ran>
}

export class ProcessGroups {
  private readonly groups: Array<number> = []

  /** `swarm <args>` to its end (`input` on its stdin); the group is killed if the effect is interrupted. */
  run(args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv; readonly input?: string }): Effect.Effect<Ran> {
    return Effect.suspend(() => this.start(args, options).ran)
  }

  /** `swarm <args>` started now, for a test that acts on what it prints while it runs (a follower's first line). */
  start(args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv; readonly input?: string }): Running {
    const child = this.spawn(args, { cwd: options.cwd, env: options.env })
    // The child may stop reading (a question too long) and exit before taking it all.
    child.stdin!.on("error", () => {})
    if (options.input !== undefined) child.stdin!.end(options.input)
    let stdout = ""
    let stderr = ""
    child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const closed = new Promise<Ran>((resolve) =>
      child.on("close", (code, signal) => resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr }))
    )
    return {
      stdout: () => stdout,
      ran: Effect.promise(() => closed).pipe(
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            try {
              if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
            } catch {
              // gone already
            }
          })
        )
      )
    }
  }

  /** `swarm <args>` in a new process group, tracked. */
  spawn(args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv }): ChildProcess {
    const child = spawn(process.execPath, [Path.join(root, "bin", "swarm.js"), ...args], { ...options, detached: true })
    if (child.pid !== undefined) this.groups.push(child.pid)
    return child
  }

  /**
   * `swarm serve --port 0` in a group of its own, once it says where it listens and `settle` ms more
   * (the first-start lines come right after the listening line).
   */
  serve(options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv; readonly settle: number }): Promise<Served> {
    return new Promise<Served>((resolve, reject) => {
      const child = this.spawn(["serve", "--port", "0"], options)
      let out = ""
      let err = ""
      let listening = false
      const exited = new Promise<number | null>((done) => child.on("exit", (code, signal) => done(signal === "SIGINT" ? 130 : code)))
      // On stderr, a line; on stdout, a record (SWARM_LOG_FORMAT=json or logfmt).
      const heard = () => {
        const match = /listening on (http:\/\/[^\s"]+)/.exec(`${err}\n${out}`)
        if (match !== null && !listening) {
          listening = true
          setTimeout(() => resolve({ child, base: match[1]!, stdout: () => out, stderr: () => err, exited }), options.settle)
        }
      }
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString()
        heard()
      })
      child.stderr!.on("data", (chunk: Buffer) => {
        err += chunk.toString()
        heard()
      })
      exited.then((code) => reject(new Error(`swarm serve exited ${code} before listening: ${err}`)))
    })
  }

  /** SIGKILL every group started (those gone already are skipped). */
  killAll(): void {
    for (const pid of this.groups) {
      try {
        process.kill(-pid, "SIGKILL")
      } catch {
        // gone already
      }
    }
  }
}

/**
 * Until `running` has printed something `pattern` matches (checked every 50 ms, at most `seconds`):
 * a test waits for what it needs to see rather than for a fixed time, which is too short on a loaded
 * machine (a binary takes seconds to start there) and longer than needed elsewhere. Dies, saying
 * what it waited for and what was printed, if that never comes.
 */
export const untilPrinted = (running: Running, pattern: RegExp, what: string, seconds = 60): Effect.Effect<void> =>
  Effect.gen(function*() {
    const deadline = Date.now() + seconds * 1000
    while (!pattern.test(running.stdout())) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`${what}: not printed within ${seconds} s; printed: ${JSON.stringify(running.stdout().slice(0, 500))}`)
      yield* Effect.sleep("50 millis")
    }
  })
