import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  FileDescriptorProto,
  type IDescriptorProto,
  type IFileDescriptorProto,
} from 'protobufjs/ext/descriptor';

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) over compiled FileDescriptorSets: the
 * real files, under their own names (`lethe/v1/coordinator.proto`) and byte for byte as protoc
 * built them, each answered with the files it imports, so that a client can load them into a
 * descriptor pool. Only the services served on the port are listed or found by symbol.
 */

/** The files of a serialized FileDescriptorSet (`repeated FileDescriptorProto file = 1`). */
export function splitDescriptorSet(set: Uint8Array): Uint8Array[] {
  const files: Uint8Array[] = [];
  let at = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = set[at++];
      if (byte === undefined) throw new Error('truncated descriptor set');
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < set.length) {
    const tag = varint();
    if (tag !== 0x0a) throw new Error(`unexpected field tag ${tag} in a descriptor set`);
    const length = varint();
    files.push(set.subarray(at, at + length));
    at += length;
  }
  return files;
}

interface IndexedFile {
  bytes: Uint8Array;
  dependencies: string[];
}

/** Files by name and fully-qualified symbols by the file that defines them. */
class DescriptorIndex {
  readonly files = new Map<string, IndexedFile>();
  readonly symbols = new Map<string, string>();
  readonly serviceNames = new Set<string>();

  constructor(sets: readonly Uint8Array[]) {
    for (const bytes of sets.flatMap(splitDescriptorSet)) {
      const file = FileDescriptorProto.decode(bytes) as IFileDescriptorProto;
      const name = file.name ?? '';
      if (this.files.has(name)) continue;
      this.files.set(name, { bytes, dependencies: file.dependency ?? [] });
      const scope = file.package ? `${file.package}.` : '';
      const add = (symbol: string): void => void this.symbols.set(symbol, name);
      const message = (prefix: string, type: IDescriptorProto): void => {
        const fqn = `${prefix}${type.name}`;
        add(fqn);
        for (const field of type.field ?? []) add(`${fqn}.${field.name}`);
        for (const nested of type.nestedType ?? []) message(`${fqn}.`, nested);
        for (const e of type.enumType ?? []) add(`${fqn}.${e.name}`);
      };
      for (const type of file.messageType ?? []) message(scope, type);
      for (const e of file.enumType ?? []) add(`${scope}${e.name}`);
      for (const service of file.service ?? []) {
        const fqn = `${scope}${service.name}`;
        this.serviceNames.add(fqn);
        add(fqn);
        for (const method of service.method ?? []) add(`${fqn}.${method.name}`);
      }
    }
  }

  /** `name` and every file it imports, transitively, leaving out those in `sent`. */
  closure(name: string, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const visit = (file: string): void => {
      const indexed = this.files.get(file);
      if (!indexed || sent.has(file)) return;
      sent.add(file);
      out.push(indexed.bytes);
      indexed.dependencies.forEach(visit);
    };
    visit(name);
    return out;
  }
}

interface ReflectionRequest {
  host?: string;
  messageRequest?: 'fileByFilename' | 'fileContainingSymbol' | 'listServices' | string;
  fileByFilename?: string;
  fileContainingSymbol?: string;
}

const REFLECTION_SERVICE = 'grpc.reflection.v1.ServerReflection';

/**
 * Adds reflection to `server`: `services` (fully qualified, e.g. `lethe.v1.Coordinator`) are
 * the ones listed and described, from the files in `descriptorSets`; the reflection service
 * itself is listed when its own descriptor is among them.
 */
export function addReflection(
  server: grpc.Server,
  descriptorSets: readonly Uint8Array[],
  services: readonly string[],
): void {
  const index = new DescriptorIndex(descriptorSets);
  const listed = [...services, REFLECTION_SERVICE].filter((s) => index.serviceNames.has(s));
  const hidden = new Set([...index.serviceNames].filter((s) => !listed.includes(s)));
  const belongsToHidden = (symbol: string): boolean =>
    [...hidden].some((s) => symbol === s || symbol.startsWith(`${s}.`));

  const answer = (request: ReflectionRequest, sent: Set<string>): Record<string, unknown> => {
    const error = (code: grpc.status, message: string) => ({
      errorResponse: { errorCode: code, errorMessage: message },
    });
    const files = (name: string | undefined) =>
      name === undefined
        ? error(grpc.status.NOT_FOUND, 'symbol not found')
        : { fileDescriptorResponse: { fileDescriptorProto: index.closure(name, sent) } };
    switch (request.messageRequest) {
      case 'listServices':
        return { listServicesResponse: { service: listed.map((name) => ({ name })) } };
      case 'fileByFilename': {
        const name = request.fileByFilename ?? '';
        if (!index.files.has(name)) return error(grpc.status.NOT_FOUND, `no file ${name}`);
        // A file already sent on this stream is sent again when asked for by name.
        sent.delete(name);
        return files(name);
      }
      case 'fileContainingSymbol': {
        const symbol = (request.fileContainingSymbol ?? '').replace(/^\./, '');
        const file = belongsToHidden(symbol) ? undefined : index.symbols.get(symbol);
        if (file !== undefined) sent.delete(file);
        return file === undefined
          ? error(grpc.status.NOT_FOUND, `no symbol ${symbol.slice(0, 200)}`)
          : files(file);
      }
      default:
        return error(
          grpc.status.UNIMPLEMENTED,
          `${String(request.messageRequest)} is not supported`,
        );
    }
  };

  const protoRoot = join(
    dirname(require.resolve('@grpc/reflection/package.json')),
    'build',
    'proto',
  );
  for (const version of ['v1', 'v1alpha']) {
    const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
      includeDirs: [protoRoot],
      oneofs: true,
      longs: Number,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: {
        reflection: Record<string, { ServerReflection: { service: grpc.ServiceDefinition } }>;
      };
    };
    server.addService(pkg.grpc.reflection[version]!.ServerReflection.service, {
      ServerReflectionInfo: (stream: grpc.ServerDuplexStream<ReflectionRequest, unknown>) => {
        const sent = new Set<string>();
        stream.on('data', (request: ReflectionRequest) => {
          stream.write({
            validHost: request.host ?? '',
            originalRequest: request,
            ...answer(request, sent),
          });
        });
        stream.on('end', () => stream.end());
      },
    });
  }
}
