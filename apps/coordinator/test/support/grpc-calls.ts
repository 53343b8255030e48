import * as grpc from '@grpc/grpc-js';

/** A unary call as its status code, details and response (OK only), never a rejection. */
export function unary<Req, Res>(
  client: grpc.Client,
  method: (r: Req, cb: (e: grpc.ServiceError | null, res: Res) => void) => unknown,
  request: Req,
): Promise<{ code: grpc.status; details: string; response?: Res }> {
  return new Promise((done) => {
    method.call(client, request, (error, response) =>
      done(
        error
          ? { code: error.code, details: error.details }
          : { code: grpc.status.OK, details: '', response },
      ),
    );
  });
}
