import * as tf from '@tensorflow/tfjs-core';
import type { ParameterCollection } from './layers/parameters';

const MAGIC = 'LETHEW01';

interface TensorEntry {
  name: string;
  shape: number[];
  offset: number;
  length: number;
}

interface Header {
  label: string;
  tensors: TensorEntry[];
  meta: Record<string, unknown>;
}

/**
 * Serialises one part's weights (trainable and moving statistics) as: 8-byte magic, uint32
 * header length, JSON header, padding to 4 bytes, then little-endian float32 data. The bytes
 * depend only on the weights, names and `meta`, so equal weights give equal content hashes.
 */
export function serializeParameters(
  params: ParameterCollection,
  meta: Record<string, unknown> = {},
): Uint8Array {
  const tensors: TensorEntry[] = [];
  let offset = 0;
  for (const { name, variable } of params.all()) {
    tensors.push({ name, shape: [...variable.shape], offset, length: variable.size });
    offset += variable.size;
  }
  const header = new TextEncoder().encode(JSON.stringify({ label: params.label, tensors, meta }));
  const dataStart = align4(MAGIC.length + 4 + header.length);
  const bytes = new Uint8Array(dataStart + offset * 4);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(bytes.buffer).setUint32(MAGIC.length, header.length, true);
  bytes.set(header, MAGIC.length + 4);
  const data = new Float32Array(bytes.buffer, dataStart, offset);
  for (const [i, { variable }] of params.all().entries()) {
    data.set(variable.dataSync() as Float32Array, tensors[i]!.offset);
  }
  return bytes;
}

/** Reads the header of serialised weights without loading them. */
export function readWeightsHeader(bytes: Uint8Array): Header {
  const magic = new TextDecoder().decode(bytes.subarray(0, MAGIC.length));
  if (bytes.length < MAGIC.length + 4 || magic !== MAGIC) {
    throw new Error('not a Lethe weights object (bad magic)');
  }
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(MAGIC.length, true);
  const json = new TextDecoder().decode(
    bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + length),
  );
  return JSON.parse(json) as Header;
}

/** Loads serialised weights into `params`; names and shapes must match exactly. */
export function deserializeParameters(params: ParameterCollection, bytes: Uint8Array): Header {
  const header = readWeightsHeader(bytes);
  const dataStart = align4(
    MAGIC.length + 4 + new TextEncoder().encode(JSON.stringify(header)).length,
  );
  const total = header.tensors.reduce((n, t) => n + t.length, 0);
  if (bytes.length !== dataStart + total * 4) {
    throw new Error(
      `weights object for ${header.label} is ${bytes.length} bytes, expected ${dataStart + total * 4}`,
    );
  }
  // Copy: the input may not be 4-byte aligned, and Float32Array views require it.
  const data = new Float32Array(bytes.slice(dataStart).buffer);
  const expected = params.all();
  if (expected.length !== header.tensors.length) {
    throw new Error(
      `weights for ${header.label} hold ${header.tensors.length} tensors, ${params.label} needs ${expected.length}`,
    );
  }
  tf.tidy(() => {
    for (const [i, entry] of header.tensors.entries()) {
      const target = expected[i]!;
      if (entry.name !== target.name || entry.shape.join('x') !== target.variable.shape.join('x')) {
        throw new Error(
          `weights mismatch at ${entry.name} [${entry.shape}] for ${params.label}/${target.name} [${target.variable.shape}]`,
        );
      }
      target.variable.assign(
        tf.tensor(data.subarray(entry.offset, entry.offset + entry.length), entry.shape),
      );
    }
  });
  return header;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
