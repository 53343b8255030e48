#!/usr/bin/env node
// A gRPC health probe (grpc.health.v1.Health/Check) for the Lethe images' HEALTHCHECK, compose
// healthchecks, `helm test` and exec probes. It needs only @grpc/grpc-js, which both images ship:
// the two messages are encoded by hand, so no .proto file is loaded.
//
//   node grpc-health-check.mjs [HOST:PORT] [--service NAME] [--timeout-ms N]
//        [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]
//
// HOST:PORT defaults to $LETHE_HEALTH_TARGET, then 127.0.0.1:7070. --service defaults to ""
// (the server as a whole); the coordinator also reports lethe.v1.Coordinator and
// lethe.v1.Registry, a worker lethe.v1.Worker. Each --tls-* flag may come from
// LETHE_HEALTH_TLS_CA / _CERT / _KEY / _SERVER_NAME instead; without a CA the channel is
// plaintext (TLS on the servers is not built yet: these flags are for when it is).
//
// Exit 0 when the service reports SERVING, 1 otherwise (NOT_SERVING, unknown service,
// unreachable, deadline, bad arguments): Docker's HEALTHCHECK reads exactly these two codes.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function fail(message) {
  process.stderr.write(`grpc-health-check: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv, env) {
  const options = {
    target: env.LETHE_HEALTH_TARGET || '127.0.0.1:7070',
    service: env.LETHE_HEALTH_SERVICE || '',
    timeoutMs: 5000,
    tlsCa: env.LETHE_HEALTH_TLS_CA || '',
    tlsCert: env.LETHE_HEALTH_TLS_CERT || '',
    tlsKey: env.LETHE_HEALTH_TLS_KEY || '',
    tlsServerName: env.LETHE_HEALTH_TLS_SERVER_NAME || '',
  };
  const flags = {
    '--service': 'service',
    '--timeout-ms': 'timeoutMs',
    '--tls-ca': 'tlsCa',
    '--tls-cert': 'tlsCert',
    '--tls-key': 'tlsKey',
    '--tls-server-name': 'tlsServerName',
  };
  let positional = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [name, inline] = arg.startsWith('--') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (name === '--help' || name === '-h') {
      process.stdout.write(
        'usage: grpc-health-check.mjs [HOST:PORT] [--service NAME] [--timeout-ms N] ' +
          '[--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]\n',
      );
      process.exit(0);
    }
    if (name in flags) {
      const value = inline ?? argv[++i];
      if (value === undefined) fail(`${name} needs a value`);
      options[flags[name]] = value;
    } else if (!arg.startsWith('-') && positional === 0) {
      options.target = arg;
      positional++;
    } else {
      fail(`unexpected argument '${arg}'`);
    }
  }
  const timeout = Number(options.timeoutMs);
  if (!Number.isInteger(timeout) || timeout <= 0) fail('--timeout-ms must be a positive integer');
  options.timeoutMs = timeout;
  if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/.test(options.target)) {
    fail(`target must be HOST:PORT, got '${options.target}'`);
  }
  if (Boolean(options.tlsCert) !== Boolean(options.tlsKey)) {
    fail('--tls-cert and --tls-key go together');
  }
  return options;
}

/** HealthCheckRequest { string service = 1; } */
function encodeRequest(service) {
  const bytes = Buffer.from(service, 'utf8');
  if (bytes.length === 0) return Buffer.alloc(0);
  const length = [];
  for (let n = bytes.length; ; n >>>= 7) {
    if (n < 0x80) {
      length.push(n);
      break;
    }
    length.push((n & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x0a, ...length]), bytes]);
}

/** HealthCheckResponse { ServingStatus status = 1; } (absent field: UNKNOWN). */
function decodeResponse(buffer) {
  let status = 0;
  let i = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 0; i < buffer.length; shift += 7) {
      const byte = buffer[i++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
    throw new Error('truncated varint');
  };
  while (i < buffer.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const value = varint();
      if (field === 1) status = value;
    } else if (wire === 2) {
      i += varint();
    } else if (wire === 1) {
      i += 8;
    } else if (wire === 5) {
      i += 4;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  return status;
}

function credentials(grpc, options) {
  if (!options.tlsCa) return grpc.credentials.createInsecure();
  const read = (file) => {
    try {
      return readFileSync(file);
    } catch (error) {
      return fail(`cannot read ${file}: ${error.message}`);
    }
  };
  return grpc.credentials.createSsl(
    read(options.tlsCa),
    options.tlsKey ? read(options.tlsKey) : null,
    options.tlsCert ? read(options.tlsCert) : null,
  );
}

function main() {
  const options = parseArgs(process.argv.slice(2), process.env);
  let grpc;
  try {
    grpc = require('@grpc/grpc-js');
  } catch (error) {
    fail(`@grpc/grpc-js not found from ${import.meta.url}: ${error.message}`);
  }
  const channelOptions = options.tlsServerName
    ? { 'grpc.ssl_target_name_override': options.tlsServerName }
    : {};
  const client = new grpc.Client(options.target, credentials(grpc, options), channelOptions);
  const deadline = new Date(Date.now() + options.timeoutMs);
  const label = options.service === '' ? options.target : `${options.target} ${options.service}`;
  client.makeUnaryRequest(
    '/grpc.health.v1.Health/Check',
    (service) => encodeRequest(service),
    (buffer) => decodeResponse(buffer),
    options.service,
    new grpc.Metadata(),
    { deadline },
    (error, status) => {
      client.close();
      if (error) fail(`${label}: ${grpc.status[error.code] ?? error.code}: ${error.details}`);
      const name = STATUS[status] ?? `status ${status}`;
      if (status !== 1) fail(`${label}: ${name}`);
      process.stdout.write(`${label}: ${name}\n`);
      process.exit(0);
    },
  );
}

main();
