/**
 * `events.ndjson`: every event of a run as its canonical JSON line, in sequence order, streamed to
 * disk as the run produces them. A long run has millions of events, so nothing is kept beyond one
 * buffer. The run hands events to a synchronous callback, which cannot wait for an asynchronous
 * stream to drain; writing full buffers with `writeSync` keeps memory bounded whatever the disk's
 * speed, at one system call per 64 KB.
 */
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import { OutputError } from "./CliError.js"

export interface EventLog {
  /** Append one line (without its newline). Never throws: a write error is kept and ends the log. */
  readonly write: (line: string) => void
  /** Write what is buffered and close the file; fails with the first write error, if any. */
  readonly close: Effect.Effect<void, OutputError>
}

const BUFFER_CHARS = 64 * 1024

const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** Open (create or truncate) `file`; the scope closes it if the run ends early. */
export const open = (file: string): Effect.Effect<EventLog, OutputError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => fs.openSync(file, "w"),
      catch: (e) => new OutputError({ path: file, reason: `cannot create it: ${reasonOf(e)}` })
    }).pipe(Effect.map((fd) => make(file, fd))),
    (log) => Effect.ignore(log.close)
  )

const make = (file: string, fd: number): EventLog => {
  let chunks: Array<string> = []
  let size = 0
  let failure: string | undefined
  let closed = false
  const flush = () => {
    if (size === 0 || failure !== undefined) return
    const text = chunks.join("")
    chunks = []
    size = 0
    try {
      const bytes = Buffer.from(text, "utf8")
      // writeSync may write less than asked (a pipe, a signal): go on until all of it is out.
      for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at)
    } catch (e) {
      failure = `cannot write it: ${reasonOf(e)}`
    }
  }
  return {
    write: (line) => {
      if (failure !== undefined || closed) return
      chunks.push(line, "\n")
      size += line.length + 1
      if (size >= BUFFER_CHARS) flush()
    },
    close: Effect.suspend(() => {
      if (!closed) {
        closed = true
        flush()
        try {
          fs.closeSync(fd)
        } catch (e) {
          failure ??= `cannot close it: ${reasonOf(e)}`
        }
      }
      return failure === undefined ? Effect.void : Effect.fail(new OutputError({ path: file, reason: failure }))
    })
  }
}
