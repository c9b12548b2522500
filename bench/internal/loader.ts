/** The `--import` that lets a child Node process run this repository's TypeScript (bin/typescript.mjs), by absolute URL. */
export const typescriptLoader = new URL("../../bin/typescript.mjs", import.meta.url).href
