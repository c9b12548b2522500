/** What `swarm chat ask` prints as an answer streams: the text whole, a tool on a line of its own, the last line closed. */
import { describe, expect, it } from "@effect/vitest"
import * as ChatView from "../../src/cli/ChatView.js"

const tool = (ok: boolean) => ({ _tag: "ToolUsed" as const, question: 1, index: 1, tool: "analyse_trades", arguments: { symbol: "MSFT", days: [1, 2] }, ok, summary: "6 trades" })

describe("ChatView", () => {
  it("streams tokens as they come, puts a tool mid-answer on a line of its own (stderr), and ends the answer with one newline", () => {
    const out: Array<string> = []
    const err: Array<string> = []
    const printer = ChatView.answerPrinter((t) => out.push(t), (t) => err.push(t))
    printer.tool(tool(true))
    printer.token("MSFT ")
    printer.token("lost.")
    printer.tool(tool(false))
    printer.token("")
    printer.end()
    printer.end()
    expect(out).toEqual(["MSFT ", "lost.", "\n"])
    expect(err).toEqual([
      "tool analyse_trades(symbol=MSFT, days=[1,2]): 6 trades\n",
      "\ntool analyse_trades(symbol=MSFT, days=[1,2]): refused: 6 trades\n"
    ])
  })

  it("says once why a tool was not run, and shows what a terminal would act on as its escape", () => {
    const refused = { ...tool(false), tool: "drop_tables", arguments: {}, summary: "refused: drop_tables: name is not a tool" }
    expect(ChatView.toolLine(refused)).toBe("tool drop_tables(): refused: drop_tables: name is not a tool\n")
    expect(ChatView.toolLine({ ...refused, summary: "failed: the database is unavailable" })).toBe("tool drop_tables(): failed: the database is unavailable\n")
    const out: Array<string> = []
    const err: Array<string> = []
    const printer = ChatView.answerPrinter((t) => out.push(t), (t) => err.push(t))
    // A model's answer with a screen clear, a title change, a C1 CSI and a right-to-left override; tabs and line breaks stay.
    printer.token("a\u001b[2J\u001b]0;pwned\u0007 b\u009b31m\u202ec\td\n")
    printer.tool({ ...tool(true), summary: "6 trades of \u001b[31mRED" })
    expect(out.join("")).toBe("a\\u001b[2J\\u001b]0;pwned\\u0007 b\\u009b31m\\u202ec\td\n")
    expect(err.join("")).toBe("tool analyse_trades(symbol=MSFT, days=[1,2]): 6 trades of \\u001b[31mRED\n")
  })

  it("adds no newline to an answer that ends with one, or that had no text", () => {
    const out: Array<string> = []
    const printer = ChatView.answerPrinter((t) => out.push(t), () => {})
    printer.end()
    printer.token("done\n")
    printer.end()
    expect(out).toEqual(["done\n"])
  })

  it("names the rule of a suggestion id, dots and all", () => {
    expect(ChatView.ruleOf("suggested-stop-acme.5.6be94885")).toBe("suggested-stop-acme")
    expect(ChatView.ruleOf("my.rule.12.0badf00d")).toBe("my.rule")
    expect(ChatView.ruleOf("odd")).toBe("odd")
  })

  it("says a run never chatted how to start", () => {
    expect(ChatView.historyText({ run: "run_1", session: null, messages: [] })).toBe('no chat with run run_1 yet: swarm chat ask run_1 "<question>" starts one\n')
  })
})
