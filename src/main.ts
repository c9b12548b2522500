/**
 * `npm start`: `swarm serve` — the Swarm server on PORT (default 7070) over the configured database
 * (the embedded PGlite under .swarm/ unless DATABASE_URL is set). On an empty database it creates
 * the first admin, prints its API key once and starts a paper run of the example strategy on the
 * sample data, with the commands to watch it. Ctrl-C stops it gracefully; the next start resumes
 * the runs it left.
 */
import { runMain } from "./cli/Main.js"

process.stdout.write(
  "swarm serve: the Swarm server (RPC, SSE, /health) — the lines below name the database, the language model, " +
    "the event bus and telemetry it uses. Ctrl-C stops it; the next start resumes its runs.\n\n"
)
runMain(["serve", ...process.argv.slice(2)])
