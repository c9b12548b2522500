/**
 * `npm start`: `swarm backtest` of the six-analyst example strategy on the sample data, with the
 * summary a person would get from the command line, the run kept in the configured database (the
 * embedded PGlite under .swarm/ unless DATABASE_URL is set). The files are found from this module's
 * location, so it runs from any working directory, and it exits by itself: the command closes the
 * database, and the embedded server process with it, before it returns.
 */
import { fileURLToPath } from "node:url"
import * as Path from "node:path"
import { runMain } from "./cli/Main.js"

const root = fileURLToPath(new URL("..", import.meta.url))
/** Paths as a person would type them from here: relative when the repository is the working directory. */
const shown = (path: string) => {
  const relative = Path.relative(process.cwd(), path)
  return relative === "" || relative.startsWith("..") || Path.isAbsolute(relative) ? path : relative
}
const data = shown(Path.join(root, "data"))
const strategy = shown(Path.join(root, "examples", "six-analysts.yaml"))

process.stdout.write(
  `swarm backtest --data ${data} --strategy ${strategy}: the synthetic sample (data/README.md), ` +
    "every agent in this process (no Redis or Ollama yet), the run kept in the database the `database:` line names " +
    "(swarm runs list shows it; --no-store keeps nothing)\n\n"
)
runMain(["backtest", "--data", data, "--strategy", strategy])
