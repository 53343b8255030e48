import { describe, expect, it } from 'vitest';
import {
  decodeFloat32,
  encodeFloat32,
  Float32Tensor,
  fromFloat32Tensor,
  toFloat32Tensor,
} from '../src/index';

describe('encodeFloat32', () => {
  it('packs little-endian IEEE-754 float32', () => {
    const bytes = encodeFloat32(new Float32Array([1, -2.5]));
    expect([...bytes]).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0]);
  });

  it('encodes a subarray from its own offset, without copying', () => {
    const all = new Float32Array([9, 1, 2, 3, 9]);
    const bytes = encodeFloat32(all.subarray(1, 4));
    expect(bytes.byteLength).toBe(12);
    expect([...decodeFloat32(bytes)]).toEqual([1, 2, 3]);
    expect(bytes.buffer).toBe(all.buffer);
  });

  it('is empty for an empty array', () => {
    expect(encodeFloat32(new Float32Array(0)).byteLength).toBe(0);
    expect(decodeFloat32(new Uint8Array(0))).toHaveLength(0);
  });
});

describe('decodeFloat32', () => {
  const values = new Float32Array([0, -0, 1.5, -3.25, Infinity, -Infinity, NaN, 3.4e38, 1e-45]);

  it('round-trips every float32 value, including -0, infinities and NaN', () => {
    const out = decodeFloat32(encodeFloat32(values));
    expect(out).toHaveLength(values.length);
    for (let i = 0; i < values.length; i++) expect(Object.is(out[i], values[i])).toBe(true);
  });

  it('returns a view of aligned bytes', () => {
    const bytes = new Uint8Array(values.byteLength + 8).subarray(4, 4 + values.byteLength);
    bytes.set(encodeFloat32(values));
    const out = decodeFloat32(bytes);
    expect(out.buffer).toBe(bytes.buffer);
    expect(out.byteOffset).toBe(4);
    expect(out[3]).toBe(-3.25);
  });

  it('copies unaligned bytes', () => {
    for (const offset of [1, 2, 3]) {
      const backing = new Uint8Array(values.byteLength + offset);
      const bytes = backing.subarray(offset);
      bytes.set(encodeFloat32(values));
      const out = decodeFloat32(bytes);
      expect(out.buffer).not.toBe(backing.buffer);
      expect(out.byteOffset).toBe(0);
      for (let i = 0; i < values.length; i++) expect(Object.is(out[i], values[i])).toBe(true);
    }
  });

  it('copies from an unaligned Node Buffer slice', () => {
    const buffer = Buffer.alloc(13);
    encodeFloat32(new Float32Array([7, 8, 9])).copy(buffer, 1);
    expect([...decodeFloat32(buffer.subarray(1))]).toEqual([7, 8, 9]);
  });

  it('rejects a length that is not a multiple of 4', () => {
    expect(() => decodeFloat32(new Uint8Array(6))).toThrow(RangeError);
    expect(() => decodeFloat32(new Uint8Array(6))).toThrow(/multiple of 4/);
  });
});

describe('Float32Tensor helpers', () => {
  it('builds a tensor message and reads it back after encoding', () => {
    const logits = Float32Array.from({ length: 6 }, (_, i) => i / 4);
    const wire = Float32Tensor.encode(toFloat32Tensor(logits, [2, 3])).finish();
    const { values, shape } = fromFloat32Tensor(Float32Tensor.decode(wire));
    expect(shape).toEqual([2, 3]);
    expect([...values]).toEqual([...logits]);
  });

  it('rejects a shape that does not match the values or the bytes', () => {
    expect(() => toFloat32Tensor(new Float32Array(5), [2, 3])).toThrow(/holds 6 values, got 5/);
    expect(() => fromFloat32Tensor({ data: Buffer.alloc(20), shape: [2, 3] })).toThrow(
      /needs 24 bytes/,
    );
    expect(() => toFloat32Tensor(new Float32Array(1), [-1])).toThrow(/invalid tensor shape/);
  });

  it('treats the empty shape as a scalar', () => {
    expect(fromFloat32Tensor(toFloat32Tensor(new Float32Array([4]), [])).values[0]).toBe(4);
  });
});
