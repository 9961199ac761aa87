// Range header parsing at the edges that the HTTP tests do not reach.
import { describe, expect, test } from "vitest";
import { parseRange } from "../../server/byte-range.ts";

describe("parseRange", () => {
  test.each([
    ["absent", undefined, { kind: "whole" }],
    ["another unit", "items=0-1", { kind: "whole" }],
    ["garbage", "bytes=abc", { kind: "whole" }],
    ["bare dash", "bytes=-", { kind: "whole" }],
    ["end before start", "bytes=5-2", { kind: "whole" }],
    ["two ranges", "bytes=0-1, 3-4", { kind: "whole" }],
    ["closed", "bytes=0-0", { kind: "part", start: 0, end: 0 }],
    ["spaces and case", " Bytes= 2-3 ", { kind: "part", start: 2, end: 3 }],
    ["end beyond size", "bytes=8-1000", { kind: "part", start: 8, end: 9 }],
    ["huge end", "bytes=0-99999999999999999999", { kind: "part", start: 0, end: 9 }],
    ["suffix", "bytes=-3", { kind: "part", start: 7, end: 9 }],
    ["zero suffix", "bytes=-0", { kind: "unsatisfiable" }],
    ["start at size", "bytes=10-", { kind: "unsatisfiable" }],
    ["huge start", "bytes=99999999999999999999-", { kind: "unsatisfiable" }],
  ])("%s", (_name, header, expected) => {
    expect(parseRange(header, 10)).toEqual(expected);
  });

  test("any range of an empty file is unsatisfiable", () => {
    expect(parseRange("bytes=-5", 0)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=0-", 0)).toEqual({ kind: "unsatisfiable" });
  });
});
