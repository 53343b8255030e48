import {
  getVerified,
  IntegrityError,
  type Manifest,
  ManifestStore,
  type ObjectRef,
  type ObjectStore,
} from '@lethe/store';
import type { z } from 'zod';

/**
 * The JSON object a manifest (default: the current one) names, hash-checked and parsed with
 * its schema; undefined when the manifest names none. @throws IntegrityError naming `what`.
 */
export async function readNamedJson<S extends z.ZodType>(
  store: ObjectStore,
  manifest: Manifest | undefined,
  name: string,
  schema: S,
  what: string,
): Promise<{ value: z.infer<S>; ref: ObjectRef } | undefined> {
  const ref = (manifest ?? (await new ManifestStore(store).read()))?.objects[name];
  if (!ref) return undefined;
  const bytes = await getVerified(store, ref);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new IntegrityError(ref.key, `${what} is not valid JSON`, { cause: error });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new IntegrityError(ref.key, `malformed ${what}: ${at}${issue?.message}`);
  }
  return { value: parsed.data, ref };
}
