/** How a child Node process runs this repository's TypeScript (bin/typescript.mjs) with Swarm's V8 flags (bin/node-flags.mjs). */
// @ts-expect-error: a plain ES module without types
import { NODE_FLAGS, REPLAY_FLAGS } from "../../bin/node-flags.mjs"

export const typescriptLoader = new URL("../../bin/typescript.mjs", import.meta.url).href

/** The arguments before a script: a server's flags and the loader. */
export const nodeArgs: ReadonlyArray<string> = [...(NODE_FLAGS as Array<string>), "--import", typescriptLoader]

/** The arguments before a script that replays history (backtests): the replaying processes' flags and the loader. */
export const replayNodeArgs: ReadonlyArray<string> = [...(REPLAY_FLAGS as Array<string>), "--import", typescriptLoader]
