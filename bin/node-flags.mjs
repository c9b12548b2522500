// The V8 flags every Swarm process runs with (npm start, `swarm`, benchmarks and their children).
//
// --max-semi-space-size=64 (MB; V8's default tops out at 16 on 64-bit): a backtest allocates one
// timestamp's batch at a time — opinions, decisions, events — whose objects live until the
// timestamp settles. With the default young generation a scavenge lands inside a timestamp every
// few timestamps and promotes that batch, so old space fills with short-lived garbage and every
// scavenge gets dearer. Measured on W2 (2 M bars, 311 k orders): the run takes 15.2–16.6 s with
// 64 MB against 19.3 s with the default.
//
// --no-allocation-site-pretenuring: V8 watches each object-literal site for a while and, when all
// its objects survived a scavenge, allocates the site's objects straight in old space from then
// on. A backtest's per-round objects survive the odd scavenge that lands mid-timestamp, so their
// sites get pretenured: every later round then lands in old space as garbage, old-to-new pointers
// pile up and each scavenge costs 30-110 ms instead of about 20. Measured on W2 (2 M bars, 311 k
// orders, loaded machine): the run takes 20-25 s without pretenuring against 31-33 s with it.
export const NODE_FLAGS = ["--max-semi-space-size=64", "--no-allocation-site-pretenuring"]

/** Whether this process already runs with them. */
export const hasNodeFlags = () => NODE_FLAGS.every((flag) => process.execArgv.includes(flag))
