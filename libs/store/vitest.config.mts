import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.mts';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // s3rver, the S3 server the tests run, encrypts ListObjectsV2 continuation tokens with
      // DES, which OpenSSL 3 keeps in its legacy provider: without this every truncated listing
      // fails with a 500 there. Real S3 and MinIO need nothing of the kind.
      execArgv: ['--openssl-legacy-provider'],
    },
  }),
);
