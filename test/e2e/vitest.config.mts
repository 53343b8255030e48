import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.mts';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // s3rver encrypts ListObjectsV2 continuation tokens with DES (OpenSSL 3's legacy provider).
      execArgv: ['--openssl-legacy-provider'],
      // One cluster per file, and the files share the machine's two cores: run them in turn.
      fileParallelism: false,
      testTimeout: 300_000,
      hookTimeout: 300_000,
    },
  }),
);
