import { describe, expect, test } from "vitest";
import { parseMeta } from "../../src/data/format";
import { LINE_HEIGHT, cellAt, cellsBetween, layoutTokens, tokenLabel } from "../../src/view/token-layout";
import { fixtureMetaJson } from "./fixture";

const meta = parseMeta(fixtureMetaJson());
const measure = (text: string) => text.length * 8; // a monospace stand-in for canvas measureText

describe("layoutTokens", () => {
  test("collapsed: the image grid is one block; every token maps to its cell", () => {
    const layout = layoutTokens(meta.tokens, meta.regions, { width: 2000, collapseImage: true, measure });
    const block = layout.cells.find((c) => c.kind === "image-block")!;
    expect(block).toMatchObject({ first: 4, last: 24, label: "[IMAGE 7×3]" });
    expect(layout.cells).toHaveLength(40 - 21 + 1);
    for (let t = 4; t <= 24; t++) expect(layout.cells[layout.cellOf[t]!]).toBe(block);
    expect(layout.cells[layout.cellOf[26]!]!.label).toBe("Describe");
  });

  test("expanded: one [IMG] cell per image token", () => {
    const layout = layoutTokens(meta.tokens, meta.regions, { width: 2000, collapseImage: false, measure });
    expect(layout.cells).toHaveLength(40);
    expect(layout.cells.filter((c) => c.kind === "image")).toHaveLength(21);
  });

  test("expanded: each image row starts a line, so the cells keep the grid's 7 columns", () => {
    const layout = layoutTokens(meta.tokens, meta.regions, { width: 2000, collapseImage: false, measure });
    const image = layout.cells.filter((c) => c.kind === "image");
    for (let row = 0; row < 3; row++) {
      const cells = image.slice(row * 7, row * 7 + 7);
      expect(new Set(cells.map((c) => c.y)).size).toBe(1);
      expect(cells[0]!.x).toBe(0);
    }
    expect(image[7]!.y).toBeGreaterThan(image[0]!.y);
    expect(layout.cells[layout.cellOf[25]!]!.x).toBe(0); // the text after the image starts its own line
  });

  test("wraps at the width and breaks the line after a newline token", () => {
    const layout = layoutTokens(meta.tokens, meta.regions, { width: 200, collapseImage: false, measure });
    for (const cell of layout.cells) expect(cell.x === 0 || cell.x + cell.w <= 200).toBe(true);
    const afterNewline = layout.cells[layout.cellOf[3]!]!; // token 2 is "\n"
    expect(afterNewline.x).toBe(0);
    expect(afterNewline.y).toBeGreaterThan(layout.cells[layout.cellOf[2]!]!.y);
    expect(layout.height).toBe(layout.cells.at(-1)!.y + LINE_HEIGHT);
  });

  test("starts the answer on a line of its own", () => {
    const layout = layoutTokens(meta.tokens, meta.regions, { width: 2000, collapseImage: true, sectionStart: 32, measure });
    const answer = layout.cells[layout.cellOf[32]!]!;
    expect(answer.x).toBe(0);
    expect(answer.y).toBeGreaterThan(layout.cells[layout.cellOf[31]!]!.y + LINE_HEIGHT);
    expect(layout.sectionTop).toBe(answer.y);
  });

  test("thinking tokens get their own kind, so they show apart from the answer", () => {
    const thinking = meta.tokens.map((t) => (t.id === 33 ? { ...t, thinking: true } : t));
    const layout = layoutTokens(thinking, meta.regions, { width: 2000, collapseImage: true, measure });
    expect(layout.cells[layout.cellOf[33]!]!.kind).toBe("thinking");
    expect(layout.cells[layout.cellOf[34]!]!.kind).toBe("text");
    expect(layout.sectionTop).toBeUndefined();
  });

  test("cellAt finds the cell under a point", () => {
    const layout = layoutTokens(meta.tokens, meta.regions, { width: 2000, collapseImage: true, measure });
    const cell = layout.cells[layout.cellOf[28]!]!;
    expect(cellAt(layout, cell.x + 1, cell.y + 1)).toBe(cell);
    expect(cellAt(layout, 1999, layout.height + 5)).toBeUndefined();
  });

  test("cellsBetween gives exactly the cells on lines overlapping a band", () => {
    const layout = layoutTokens(meta.tokens, meta.regions, { width: 200, collapseImage: false, sectionStart: 32, measure });
    for (const [top, bottom] of [[0, 1], [25, 61], [LINE_HEIGHT * 3, LINE_HEIGHT * 4], [0, layout.height], [layout.height, layout.height + 9]] as const) {
      const expected = layout.cells.filter((c) => c.y < bottom && c.y + LINE_HEIGHT > top);
      expect(cellsBetween(layout, top, bottom)).toEqual(expected);
    }
  });
});

describe("tokenLabel", () => {
  test("makes whitespace visible and marks partial characters", () => {
    expect(tokenLabel({ id: 0, text: "a\n", type: "text" })).toBe("a↵");
    expect(tokenLabel({ id: 0, text: "\t", type: "text" })).toBe("⇥");
    expect(tokenLabel({ id: 0, text: "", type: "text" })).toBe("·");
    expect(tokenLabel({ id: 0, text: "<b>x</b>", type: "text" })).toBe("<b>x</b>"); // drawn as text, never HTML
  });
});
