// IEEE binary16 → float32. The viewer keeps attention as raw float16 bits and
// decodes only the row or column a view needs, through a 65,536-entry table
// (256 KiB, built once) so a decode is one array read per value.

/** Decode one float16 bit pattern (the reference the table is built from). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

let table: Float32Array | undefined;

/** The decode table: entry b is the value of bit pattern b. */
export function halfTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) table[bits] = halfToFloat(bits);
  }
  return table;
}

/**
 * Decode `count` values of `source` starting at `offset`, `stride` apart:
 * stride 1 reads a row of a row-major matrix, stride N reads a column.
 */
export function decodeStrided(source: Uint16Array, offset: number, count: number, stride: number): Float32Array {
  const lut = halfTable();
  const out = new Float32Array(count);
  for (let k = 0, at = offset; k < count; k++, at += stride) out[k] = lut[source[at]!]!;
  return out;
}
