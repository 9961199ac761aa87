import { describe, expect, test } from "vitest";
import { parseMeta, type Token } from "../../src/data/format";
import { selectionText, stepToken, wordAt } from "../../src/state/words";
import { fixtureMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson());

function tokens(...texts: (string | [string, Token["type"]])[]): Token[] {
  return texts.map((t, id) => (typeof t === "string" ? { id, text: t, type: "text" } : { id, text: t[0], type: t[1] }));
}

describe("wordAt", () => {
  const seq = tokens(["<|im_start|>", "special"], "The", " wood", "en", " table", ",", " un", "believ", "able", "!", "\n", " 4", "2");
  test("joins pieces without a leading space", () => {
    expect(wordAt(seq, 3)).toEqual([2, 3]);
    expect(wordAt(seq, 2)).toEqual([2, 3]);
    expect(wordAt(seq, 7)).toEqual([6, 7, 8]);
    expect(wordAt(seq, 11)).toEqual([11, 12]);
  });
  test("punctuation, whitespace and special tokens stand alone", () => {
    expect(wordAt(seq, 5)).toEqual([5]);
    expect(wordAt(seq, 9)).toEqual([9]);
    expect(wordAt(seq, 10)).toEqual([10]);
    expect(wordAt(seq, 0)).toEqual([0]);
    expect(wordAt(seq, 1)).toEqual([1]); // "The" does not join the special token before it
  });
  test("a partial character joins the token that completes it", () => {
    const cjk = tokens(" 猫", "", "咪", " sat");
    expect(wordAt(cjk, 1)).toEqual([0, 1, 2]);
    expect(selectionText(cjk, wordAt(cjk, 2))).toBe(" 猫咪");
  });
  test("keeps the text exactly, whitespace and punctuation included", () => {
    expect(selectionText(seq, [4, 5])).toBe(" table,");
  });
});

describe("stepToken", () => {
  test("moves one token, within the answer when there is one", () => {
    const generated = { ...meta, answerStart: 32 };
    expect(stepToken(generated, [33], 1)).toBe(34);
    expect(stepToken(generated, [32], -1)).toBe(32);
    expect(stepToken(generated, [32, 33], 1)).toBe(34); // from a word's last token
    expect(stepToken(generated, [32, 33], -1)).toBe(32); // from its first
    expect(stepToken(generated, [], 1)).toBe(32);
    expect(stepToken(generated, [39], 1)).toBe(39);
  });
  test("walks the whole sequence without an answer", () => {
    expect(stepToken(meta, [0], -1)).toBe(0);
    expect(stepToken(meta, [5], 1)).toBe(6);
  });
});
