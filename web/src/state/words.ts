// Words and answer stepping: which tokens a click on a word selects, and where
// `[` / `]` move the selection.

import type { SampleMeta, Token } from "../data/format";

const WORD_CHAR = /[\p{L}\p{N}_'’]/u;

/** A token that carries on the word before it: no leading space, no punctuation first. */
function continuesWord(previous: Token, token: Token): boolean {
  if (previous.type !== "text" || token.type !== "text") return false;
  if (previous.text === "") return true; // part of a character: the next token completes it
  if (token.text === "") return WORD_CHAR.test(previous.text.at(-1)!);
  return WORD_CHAR.test(previous.text.at(-1)!) && WORD_CHAR.test(token.text[0]!);
}

/** The tokens of the word that token `index` belongs to (just itself for non-text tokens). */
export function wordAt(tokens: Token[], index: number): number[] {
  let first = index;
  while (first > 0 && continuesWord(tokens[first - 1]!, tokens[first]!)) first--;
  let last = index;
  while (last + 1 < tokens.length && continuesWord(tokens[last]!, tokens[last + 1]!)) last++;
  return Array.from({ length: last - first + 1 }, (_, k) => first + k);
}

/**
 * The single token `[` (delta -1) or `]` (+1) selects next: stepping through the
 * answer when the sample has one, else the whole sequence; clamped at the ends.
 */
export function stepToken(meta: SampleMeta, selected: number[], delta: number): number {
  const first = meta.answerStart ?? 0;
  if (selected.length === 0) return first;
  const from = delta > 0 ? selected.at(-1)! : selected[0]!;
  return Math.min(meta.seqLen - 1, Math.max(first, from + delta));
}

/** The selected tokens' text, exactly as the model wrote it. */
export function selectionText(tokens: Token[], selected: number[]): string {
  return selected.map((i) => tokens[i]!.text).join("");
}
