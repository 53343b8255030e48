import {
  HEALTH_DESCRIPTOR_SET,
  LETHE_DESCRIPTOR_SET,
  REFLECTION_DESCRIPTOR_SET,
} from '@lethe/proto';
import { FileDescriptorProto, type IFileDescriptorProto } from 'protobufjs/ext/descriptor';
import { describe, expect, it } from 'vitest';
import { splitDescriptorSet, strictPoolProblems } from '../src';

const filesOf = (...sets: Uint8Array[]) =>
  new Map(
    sets
      .flatMap(splitDescriptorSet)
      .map((bytes) => FileDescriptorProto.decode(bytes) as IFileDescriptorProto)
      .map((file) => [file.name!, file] as const),
  );

describe('strictPoolProblems', () => {
  it('finds nothing in the files the servers reflect', () => {
    const files = filesOf(LETHE_DESCRIPTOR_SET, HEALTH_DESCRIPTOR_SET, REFLECTION_DESCRIPTOR_SET);
    expect([...files.keys()]).toContain('grpc/health/v1/health.proto');
    expect(strictPoolProblems(files)).toEqual([]);
  });

  it('finds an undeclared import and a malformed map entry', () => {
    const files = filesOf(LETHE_DESCRIPTOR_SET);
    const bad: IFileDescriptorProto = {
      name: 'bad.proto',
      package: 'bad',
      dependency: ['lethe/v1/common.proto'],
      messageType: [
        {
          name: 'Holder',
          field: [
            { name: 'at', number: 1, label: 1, type: 11, typeName: '.google.protobuf.Timestamp' },
            { name: 'tags', number: 2, label: 3, type: 11, typeName: '.bad.Holder.TagsEntry' },
          ],
          nestedType: [
            {
              name: 'TagsEntry',
              options: { mapEntry: true },
              field: [
                { name: 'k', number: 1, label: 1, type: 9 },
                { name: 'value', number: 2, label: 1, type: 9 },
              ],
            },
          ],
        },
      ],
    };
    files.set('bad.proto', bad);
    expect(strictPoolProblems(files)).toEqual([
      'bad.proto: .bad.Holder.at uses .google.protobuf.Timestamp from google/protobuf/timestamp.proto, which it does not import',
      'bad.proto: .bad.Holder.TagsEntry is a malformed map entry',
    ]);
  });
});
