// The V8 flags every Swarm process runs with (npm start, `swarm`, benchmarks and their children).
//
// --max-semi-space-size=64 (MB; V8's default tops out at 16 on 64-bit): a backtest allocates one
// timestamp's batch at a time — opinions, decisions, events — whose objects live until the
// timestamp settles. With the default young generation a scavenge lands inside a timestamp every
// few timestamps and promotes that batch, so old space fills with short-lived garbage and every
// scavenge gets dearer. Measured on W2 (2 M bars, 311 k orders): the run takes 15.2–16.6 s with
// 64 MB against 19.3 s with the default.

export const NODE_FLAGS = ["--max-semi-space-size=64"]

// Processes that replay history in a world of their own (`swarm backtest`, `replay`, `resume`, the
// backtest benchmarks) also run with --no-allocation-site-pretenuring. V8 watches each
// object-literal site and, once all of a site's objects survived a scavenge, allocates that site's
// objects straight in old space. A backtest's per-round objects survive the odd scavenge that lands
// mid-timestamp, so their sites get pretenured: every later round then lands in old space as
// garbage, old-to-new pointers pile up and each scavenge takes 30-110 ms instead of about 20.
// Measured on W2 (2 M bars, 311 k orders): the run takes 20-25 s without pretenuring against
// 31-33 s with it. A server keeps it: paced paper runs there had a better latency tail with it
// (tick-to-order p99 1.63-1.92 ms against 1.78-2.15 ms without, four runs each).
export const REPLAY_FLAGS = [...NODE_FLAGS, "--no-allocation-site-pretenuring"]

/** The flags for `swarm <command>`: the replaying commands get `REPLAY_FLAGS`. */
export const flagsFor = (command) => (["backtest", "replay", "resume"].includes(command) ? REPLAY_FLAGS : NODE_FLAGS)

/** Whether this process already runs with `flags`. */
export const hasNodeFlags = (flags = NODE_FLAGS) => flags.every((flag) => process.execArgv.includes(flag))
