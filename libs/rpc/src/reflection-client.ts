import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import {
  type IDescriptorProto,
  FileDescriptorProto,
  FileDescriptorSet,
  type IFileDescriptorProto,
} from 'protobufjs/ext/descriptor';

/**
 * A server-reflection client as generic tools are built (grpcurl, Postman, grpc-js reflection
 * clients): it knows no .proto file of the server. It asks grpc.reflection.v1 for the services,
 * fetches the file of each and every file those import, loads them into a descriptor pool
 * (protobufjs's descriptor extension, the pool @grpc/proto-loader builds from a
 * FileDescriptorSet) and calls methods by name with messages built from the pool's types.
 */

interface ReflectionReply {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

type ReflectionStub = grpc.Client & {
  ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionReply>;
};

export interface ReflectedServer {
  /** Services the server lists, sorted. */
  services: string[];
  /** Every file reached from the listed services, by name, decoded. */
  files: Map<string, IFileDescriptorProto>;
  /** Files imported but never delivered (should be empty). */
  unresolved: string[];
  /**
   * What a strict descriptor pool (protoc's, Go's protoregistry) would refuse and protobufjs
   * lets pass: a type used from a file that is not imported, a malformed map entry.
   */
  strictProblems: string[];
  /** The pool: every type resolved (`resolveAll` threw otherwise). */
  pool: protobuf.Root;
  /** A client of `service` from the pool: methods by their proto names, callback style. */
  client(service: string): grpc.Client;
  /** Asks for the file holding `symbol`: its error code when the server does not have it. */
  symbolErrorCode(symbol: string): Promise<number | undefined>;
  close(): void;
}

function reflectionStub(address: string, credentials: grpc.ChannelCredentials): ReflectionStub {
  const root = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  const definition = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [root],
    keepCase: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  return new pkg.grpc.reflection.v1.ServerReflection(
    address,
    credentials,
  ) as unknown as ReflectionStub;
}

/** One request on one stream, its reply (a new stream each time, as simple tools do). */
function ask(stub: ReflectionStub, request: object): Promise<ReflectionReply> {
  return new Promise((resolve, reject) => {
    const stream = stub.ServerReflectionInfo();
    stream.once('data', (reply: ReflectionReply) => {
      resolve(reply);
      stream.end();
    });
    stream.once('error', reject);
    stream.write(request);
  });
}

/** A serialized FileDescriptorSet of `files` (field 1, length-delimited, repeated). */
function descriptorSetBytes(files: readonly Uint8Array[]): Buffer {
  return Buffer.from(
    FileDescriptorSet.encode(
      FileDescriptorSet.create({ file: files.map((bytes) => FileDescriptorProto.decode(bytes)) }),
    ).finish(),
  );
}

/** The problems a strict pool would find in `files` (see ReflectedServer.strictProblems). */
export function strictPoolProblems(files: ReadonlyMap<string, IFileDescriptorProto>): string[] {
  const definedIn = new Map<string, string>();
  const index = (scope: string, type: IDescriptorProto, file: string): void => {
    const name = `${scope}.${type.name}`;
    definedIn.set(name, file);
    for (const nested of type.nestedType ?? []) index(name, nested, file);
    for (const e of type.enumType ?? []) definedIn.set(`${name}.${e.name}`, file);
  };
  for (const [name, file] of files) {
    const scope = file.package ? `.${file.package}` : '';
    for (const type of file.messageType ?? []) index(scope, type, name);
    for (const e of file.enumType ?? []) definedIn.set(`${scope}.${e.name}`, name);
  }
  const problems: string[] = [];
  for (const [name, file] of files) {
    const visible = new Set([name, ...(file.dependency ?? [])]);
    const use = (typeName: string | null | undefined, where: string): void => {
      if (!typeName) return;
      const from = definedIn.get(typeName);
      if (from === undefined) problems.push(`${name}: ${where} names unknown ${typeName}`);
      else if (!visible.has(from)) {
        problems.push(`${name}: ${where} uses ${typeName} from ${from}, which it does not import`);
      }
    };
    const check = (scope: string, type: IDescriptorProto): void => {
      const full = `${scope}.${type.name}`;
      for (const field of type.field ?? []) use(field.typeName, `${full}.${field.name}`);
      for (const nested of type.nestedType ?? []) {
        check(full, nested);
        if (!nested.options?.mapEntry) continue;
        const [key, value] = nested.field ?? [];
        const user = (type.field ?? []).find((f) => f.typeName === `${full}.${nested.name}`);
        if (
          nested.field?.length !== 2 ||
          key?.name !== 'key' ||
          key.number !== 1 ||
          value?.name !== 'value' ||
          value.number !== 2 ||
          !nested.name?.endsWith('Entry') ||
          user?.label !== 3
        ) {
          problems.push(`${name}: ${full}.${nested.name} is a malformed map entry`);
        }
      }
    };
    const scope = file.package ? `.${file.package}` : '';
    for (const type of file.messageType ?? []) check(scope, type);
    for (const service of file.service ?? []) {
      for (const method of service.method ?? []) {
        const where = `${scope}.${service.name}.${method.name}`;
        use(method.inputType, where);
        use(method.outputType, where);
      }
    }
  }
  return problems;
}

/** Reflects the server at `address` (plaintext unless `credentials`) into a descriptor pool. */
export async function reflectServer(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): Promise<ReflectedServer> {
  const stub = reflectionStub(address, credentials);
  const listed = await ask(stub, { list_services: '' });
  const services = (listed.list_services_response?.service ?? []).map((s) => s.name).sort();
  const raw = new Map<string, Uint8Array>();
  const files = new Map<string, IFileDescriptorProto>();
  const take = (reply: ReflectionReply, what: string): void => {
    if (reply.error_response) {
      throw new Error(`${what}: ${reply.error_response.error_message}`);
    }
    for (const bytes of reply.file_descriptor_response?.file_descriptor_proto ?? []) {
      const file = FileDescriptorProto.decode(bytes) as IFileDescriptorProto;
      raw.set(file.name!, bytes);
      files.set(file.name!, file);
    }
  };
  for (const service of services) {
    take(await ask(stub, { file_containing_symbol: service }), service);
  }
  // Imports the server did not send with the file: fetched by name, as a pool needs them.
  const unresolved: string[] = [];
  for (let changed = true; changed;) {
    changed = false;
    for (const file of [...files.values()]) {
      for (const dependency of file.dependency ?? []) {
        if (files.has(dependency) || unresolved.includes(dependency)) continue;
        const reply = await ask(stub, { file_by_filename: dependency });
        if (reply.error_response) unresolved.push(dependency);
        else take(reply, dependency);
        changed = true;
      }
    }
  }
  const set = descriptorSetBytes([...raw.values()]);
  const { fromDescriptor } = protobuf.Root as unknown as {
    fromDescriptor(bytes: Uint8Array): protobuf.Root;
  };
  const pool = fromDescriptor(set);
  pool.resolveAll();
  const definitions = grpc.loadPackageDefinition(
    // Field names as the .proto spells them, enums by name, 64-bit integers as strings: what
    // a generic tool shows.
    protoLoader.loadFileDescriptorSetFromBuffer(set, {
      keepCase: true,
      enums: String,
      longs: String,
      defaults: true,
    }),
  );
  const clients: grpc.Client[] = [];
  return {
    services,
    files,
    unresolved,
    strictProblems: strictPoolProblems(files),
    pool,
    client(service) {
      const Constructor = service
        .split('.')
        .reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], definitions) as
        grpc.ServiceClientConstructor | undefined;
      if (!Constructor) throw new Error(`the pool has no service ${service}`);
      const client = new Constructor(address, credentials);
      clients.push(client);
      return client;
    },
    async symbolErrorCode(symbol) {
      return (await ask(stub, { file_containing_symbol: symbol })).error_response?.error_code;
    },
    close() {
      for (const client of clients) client.close();
      stub.close();
    },
  };
}

/** Calls `method` (its proto name) of a pool client with a plain-object request. */
export function callByName(
  client: grpc.Client,
  method: string,
  request: object,
): Promise<Record<string, unknown>> {
  const fn = (client as unknown as Record<string, unknown>)[method] as
    | ((
        request: object,
        options: grpc.CallOptions,
        callback: (error: grpc.ServiceError | null, value?: Record<string, unknown>) => void,
      ) => void)
    | undefined;
  if (typeof fn !== 'function') return Promise.reject(new Error(`no method ${method}`));
  return new Promise((resolve, reject) =>
    fn.call(client, request, { deadline: Date.now() + 10_000 }, (error, value) =>
      error ? reject(error) : resolve(value!),
    ),
  );
}
