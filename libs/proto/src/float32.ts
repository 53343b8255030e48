import type { Float32Tensor } from './generated/lethe/v1/common';

/**
 * Tensors travel as packed little-endian float32 bytes (see proto/lethe/v1/common.proto). These
 * helpers convert between those bytes and `Float32Array`, without copying where the memory
 * layout allows it.
 */

/** True on little-endian hosts (every platform Node supports in practice). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The little-endian float32 bytes of `values`, for a `bytes` field such as `Float32Tensor.data`.
 *
 * On little-endian hosts the result is a view of the same memory (no copy): do not modify
 * `values` until the message has been serialised. On big-endian hosts it is a byte-swapped copy.
 */
export function encodeFloat32(values: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.allocUnsafe(values.byteLength);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, i * 4);
  return out;
}

/**
 * The float32 values packed little-endian in `bytes`.
 *
 * When `bytes` starts at a 4-byte-aligned offset of its buffer (as buffers decoded from a
 * message are) the result is a view of the same memory; otherwise, and on big-endian hosts, it
 * is a copy. Throws a RangeError when the length is not a multiple of 4.
 */
export function decodeFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new RangeError(
      `float32 data must be a multiple of 4 bytes long, got ${bytes.byteLength} bytes`,
    );
  }
  const n = bytes.byteLength / 4;
  if (!LITTLE_ENDIAN) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return Float32Array.from({ length: n }, (_, i) => view.getFloat32(i * 4, true));
  }
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer, 0, n);
}

/** A tensor's values and shape, as `Float32Tensor` carries them on the wire. */
export interface Float32Values {
  values: Float32Array;
  shape: number[];
}

/** Number of values a shape holds (1 for the scalar shape `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(`invalid tensor shape [${shape.join(', ')}]`);
    }
    size *= d;
  }
  return size;
}

/**
 * A `Float32Tensor` message for `values` of the given shape (no copy on little-endian hosts; see
 * encodeFloat32). Throws a RangeError when the shape does not hold exactly `values.length` values.
 */
export function toFloat32Tensor(values: Float32Array, shape: readonly number[]): Float32Tensor {
  if (shapeSize(shape) !== values.length) {
    throw new RangeError(
      `tensor shape [${shape.join(', ')}] holds ${shapeSize(shape)} values, got ${values.length}`,
    );
  }
  return { data: encodeFloat32(values), shape: [...shape] };
}

/**
 * The values of a received `Float32Tensor` (see decodeFloat32 for when they share memory with
 * the message). Throws a RangeError when the data length does not match the shape, which a
 * server should report as INVALID_ARGUMENT.
 */
export function fromFloat32Tensor(tensor: Float32Tensor): Float32Values {
  const expected = shapeSize(tensor.shape) * 4;
  if (tensor.data.byteLength !== expected) {
    throw new RangeError(
      `tensor shape [${tensor.shape.join(', ')}] needs ${expected} bytes of float32 data, got ${tensor.data.byteLength}`,
    );
  }
  return { values: decodeFloat32(tensor.data), shape: [...tensor.shape] };
}
