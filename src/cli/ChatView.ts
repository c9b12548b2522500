/**
 * What `swarm chat` prints: an answer as it streams (its text on stdout, a line per tool on
 * stderr), a run's chat as a transcript, the rule suggestions as a table with the ids `apply`
 * takes. Pure functions over what the server answered (schemas/Chat.ts); `--json` prints the
 * contract's own encoding instead.
 */
import { Schema } from "effect"
import { ChatChunk, ChatFollowed, type ChatHistory, type ChatMessage, type RuleSuggestions } from "../../schemas/Chat.js"
import { table, wallTime } from "./RunsView.js"
import { visible } from "./Io.js"
import { count, money } from "./Summary.js"

const encodeChunk = Schema.encodeSync(ChatChunk)

/** A chunk as `chat ask --json` prints it: the contract's encoding, one line. */
export const chunkLine = (chunk: ChatChunk): string => `${JSON.stringify(encodeChunk(chunk))}\n`

const encodeFollowed = Schema.encodeSync(ChatFollowed)

/** An item of a followed chat as `chat follow --json` prints it: the contract's encoding, one line. */
export const followedLine = (item: ChatFollowed): string => `${JSON.stringify(encodeFollowed(item))}\n`

/** A tool call's arguments, short: `symbol=MSFT, hours=[9,10]`. */
const argumentsText = (args: Readonly<Record<string, unknown>>): string =>
  Object.entries(args).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ")

/** The line `chat ask` prints on stderr for a tool the agent ran (or refused to run). */
export const toolLine = (chunk: Extract<ChatChunk, { _tag: "ToolUsed" }>): string =>
  // A summary of a tool not run says why itself ("refused: …", "failed: …").
  visible(`tool ${chunk.tool}(${argumentsText(chunk.arguments)}): ${chunk.ok || /^(refused|failed):/.test(chunk.summary) ? "" : "refused: "}${chunk.summary}`) + "\n"

/**
 * The printer of one streamed answer. The text goes to `out` as it comes; a tool line (or a note)
 * goes to `err`, starting a line of its own when the text is mid-line (both share a terminal); `end`
 * closes the text's last line, so the answer always ends with a newline.
 */
export const answerPrinter = (out: (text: string) => void, err: (text: string) => void) => {
  let open = false
  let screenOpen = false
  return {
    token: (text: string) => {
      if (text === "") return
      out(visible(text))
      open = screenOpen = !text.endsWith("\n")
    },
    tool: (chunk: Extract<ChatChunk, { _tag: "ToolUsed" }>) => {
      err(`${screenOpen ? "\n" : ""}${toolLine(chunk)}`)
      screenOpen = false
    },
    /** A line on `err` about the stream (cut off, reading on), starting a line of its own as a tool's does. */
    note: (line: string) => {
      err(`${screenOpen ? "\n" : ""}${line}`)
      screenOpen = false
    },
    end: () => {
      if (open) out("\n")
      open = screenOpen = false
    }
  }
}

/** Text on one line, cut to `max` characters. */
const oneLine = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max)}…` : flat
}

/** Continuation lines indented under the message's head. */
const indented = (text: string): string => text.split("\n").join("\n    ")

/** How long a tool's result the transcript shows: the whole is in `--json`. */
const TOOL_RESULT = 100

const messageText = (m: ChatMessage): string => {
  const head = `#${m.seq} ${wallTime(m.createdAt)}`
  switch (m.role) {
    case "user":
      return `${head} you: ${indented(m.content)}`
    case "tool":
      return `${head} tool ${m.toolName ?? "?"} answered: ${oneLine(m.content, TOOL_RESULT)}`
    case "assistant": {
      const by = m.backend === null ? "" : ` (${m.backend}${m.model === null ? "" : ` ${m.model}`})`
      const calls = m.toolCalls === null || m.toolCalls.length === 0
        ? ""
        : ` called ${m.toolCalls.map((c) => `${c.name}(${argumentsText(c.arguments)})`).join(", ")}`
      const text = m.content === "" ? "" : `: ${indented(m.content)}`
      const broke = m.error === null ? "" : `\n    (broke off: ${m.error})`
      return `${head} agent${by}${calls}${text}${calls === "" && text === "" ? ": (no text)" : ""}${broke}`
    }
  }
}

/** `chat history`: the run's messages, oldest first, and how many earlier ones `--limit` left out. */
export const historyText = (history: ChatHistory, earlierPage?: (first: number) => string): string => {
  if (history.session === null) {
    return `no chat with run ${history.run} yet: swarm chat ask ${history.run} "<question>" starts one\n`
  }
  if (history.messages.length === 0) {
    return `no messages in this page of the chat with run ${history.run} (${history.session})\n`
  }
  const first = history.messages[0]!.seq
  const earlier = first - 1
  const shows = earlierPage === undefined ? "--limit shows more" : earlierPage(first)
  return [
    `chat with run ${history.run} (${history.session}):`,
    ...(earlier > 0 ? [`… ${count(earlier)} earlier message${earlier === 1 ? "" : "s"}: ${shows}`] : []),
    ...history.messages.map((m) => visible(messageText(m))),
    ""
  ].join("\n")
}

/** Words wrapped at `width` columns, for a table cell. */
export const wrap = (text: string, width: number): string => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === "" ? word : `${line} ${word}`
    }
  }
  if (line !== "") lines.push(line)
  return lines.join("\n")
}

/** `chat suggestions`: each rule with its id, what it would do, the trades behind it and why; then what gave none. */
export const suggestionsText = (answer: RuleSuggestions): string => {
  const head = `rules suggested for run ${answer.run} (strategy ${answer.strategy} v${answer.strategyVersion}${
    answer.strategyDeleted === true ? ", deleted" : ""
  }; patterns of at least ${count(answer.minTrades)} trade${answer.minTrades === 1 ? "" : "s"})`
  const skipped = answer.skipped.map((s) => `not suggested: ${s.pattern}: ${s.reason}`)
  if (answer.suggestions.length === 0) {
    return [`no rule to suggest for run ${answer.run} (patterns of at least ${count(answer.minTrades)} trades; --min-trades takes fewer)`, ...skipped, ""]
      .join("\n")
  }
  const t = table(["id", "would", "trades", "P&L", "why"], ["left", "left", "right", "right", "left"])
  for (const s of answer.suggestions) {
    const e = s.evidence
    t.push([s.id, wrap(s.rule.name, 32), `${count(e.trades)} (${count(e.losingTrades)} lost)`, money(e.pnl), wrap(s.reason, 60)])
  }
  return [
    `${head}:`,
    t.toString(),
    ...skipped,
    answer.strategyDeleted === true
      ? `the run's strategy was deleted: none can be applied (put one in another strategy with swarm rules put)`
      : `apply one (a new version of the strategy): swarm chat apply ${answer.run} <id>`,
    ""
  ].join("\n")
}

/**
 * The rule a suggestion id names: `<rule id>.<min trades>.<hash>` (schemas/Chat.ts `RuleSuggestion`);
 * the id itself when it is not of that shape.
 */
export const ruleOf = (suggestion: string): string => {
  const parts = suggestion.split(".")
  return parts.length >= 3 ? parts.slice(0, -2).join(".") : suggestion
}
