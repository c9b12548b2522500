/**
 * The real `swarm` binary in a process group of its own (bin/swarm.js starts a second node, and a
 * server its embedded database), tracked so a test file can kill every group it started when it
 * ends — a failed or timed-out test must not leave a server running.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))

export class ProcessGroups {
  private readonly groups: Array<number> = []

  /** `swarm <args>` in a new process group, tracked. */
  spawn(args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv }): ChildProcess {
    const child = spawn(process.execPath, [Path.join(root, "bin", "swarm.js"), ...args], { ...options, detached: true })
    if (child.pid !== undefined) this.groups.push(child.pid)
    return child
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
