// Parses an HTTP Range header against a file size (RFC 9110 §14).
// Only single ranges are honoured: a multi-range request gets the whole file,
// which the RFC allows and which keeps the server free of multipart bodies.

export type RangeAnswer =
  | { kind: "whole" }
  | { kind: "part"; start: number; end: number } // inclusive, like Content-Range
  | { kind: "unsatisfiable" };

const SINGLE_RANGE = /^(\d*)-(\d*)$/;

export function parseRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: "whole" };
  const ranges = /^bytes=(.*)$/i.exec(header.trim())?.[1];
  // An unknown unit or a malformed header is ignored, as the RFC says, not refused.
  if (ranges === undefined || ranges.includes(",")) return { kind: "whole" };
  const [first, last] = SINGLE_RANGE.exec(ranges.trim())?.slice(1) ?? [];
  if (first === undefined || last === undefined || (first === "" && last === "")) return { kind: "whole" };
  return first === "" ? suffixRange(toNumber(last), size) : closedOrOpenRange(first, last, size);
}

function suffixRange(length: number, size: number): RangeAnswer {
  if (length === 0 || size === 0) return { kind: "unsatisfiable" };
  return { kind: "part", start: Math.max(0, size - length), end: size - 1 };
}

function closedOrOpenRange(first: string, last: string, size: number): RangeAnswer {
  const start = toNumber(first);
  const end = last === "" ? Infinity : toNumber(last);
  if (end < start) return { kind: "whole" }; // syntactically invalid: ignore it
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "part", start, end: Math.min(end, size - 1) };
}

// Digit strings beyond 2^53 still compare correctly as "too large" through Infinity.
function toNumber(digits: string): number {
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : Infinity;
}
