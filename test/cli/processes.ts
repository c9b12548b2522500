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

/** A `swarm serve` started by `ProcessGroups.serve`: its base URL, its output so far, its exit code (130: SIGINT). */
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

export class ProcessGroups {
  private readonly groups: Array<number> = []

  /** `swarm <args>` to its end (`input` on its stdin); the group is killed if the effect is interrupted. */
  run(args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv; readonly input?: string }): Effect.Effect<Ran> {
    return Effect.async<Ran>((resume) => {
      const child = this.spawn(args, { cwd: options.cwd, env: options.env })
      // The child may stop reading (a question too long) and exit before taking it all.
      child.stdin!.on("error", () => {})
      if (options.input !== undefined) child.stdin!.end(options.input)
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
      child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      child.on("close", (code, signal) => resume(Effect.succeed({ code: code ?? (signal === null ? -1 : 128), stdout, stderr })))
      return Effect.sync(() => {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
      })
    })
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
      child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()))
      child.stderr!.on("data", (chunk: Buffer) => {
        err += chunk.toString()
        const match = /listening on (http:\/\/\S+)/.exec(err)
        if (match !== null && !listening) {
          listening = true
          setTimeout(() => resolve({ child, base: match[1]!, stdout: () => out, stderr: () => err, exited }), options.settle)
        }
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
