/**
 * UTF-16 text with a byte-order mark, as Windows writes it: Notepad's "Unicode" and "Unicode big
 * endian", Excel's "Unicode text", and Windows PowerShell 5's `>` and `Out-File`. The mark says
 * what the bytes are, so decoding them is no guess; without one, a file is read as UTF-8. Shared
 * by every reader of a user's file (CSV data, strategy and rule files).
 */
import { Either } from "effect"

/**
 * The text of `bytes` when they start with a UTF-16 byte-order mark (little- or big-endian, but
 * not the UTF-32 little-endian one, which begins with the same two bytes), without the mark;
 * a reason when they start with one but cannot be UTF-16 (an odd number of bytes); undefined
 * when they do not start with one.
 */
export const decodeWithMark = (bytes: Uint8Array): Either.Either<string, string> | undefined => {
  const b0 = bytes[0], b1 = bytes[1]
  const little = b0 === 0xff && b1 === 0xfe && !(bytes[2] === 0 && bytes[3] === 0)
  if (!little && !(b0 === 0xfe && b1 === 0xff)) return undefined
  if (bytes.length % 2 === 1) {
    return Either.left("starts with a UTF-16 byte-order mark but has an odd number of bytes: it is cut short, or not text")
  }
  // Big-endian swapped to little-endian on a copy (Buffer decodes only the latter without ICU); the caller's bytes stay as read.
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return Either.right((little ? buffer : Buffer.from(buffer).swap16()).toString("utf16le", 2))
}

/** A user's file's text: UTF-16 as its byte-order mark says, else UTF-8 (a UTF-8 mark is left for the parser to skip). */
export const decodeFileText = (bytes: Uint8Array): Either.Either<string, string> =>
  decodeWithMark(bytes) ?? Either.right(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"))
