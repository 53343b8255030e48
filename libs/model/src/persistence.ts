import {
  getVerified,
  type JsonValue,
  type Manifest,
  ManifestStore,
  type ObjectRef,
  type ObjectStore,
  putContent,
} from '@lethe/store';
import { type ModulePart, MoEModel, type MoEConfig } from './moe-model';
import { deserializeParameters, serializeParameters } from './serialization';

/** What a stored model needs besides its weights to be used on new images. */
export interface ModelCard {
  config: MoEConfig;
  classes: string[];
  /** Classes the served output never predicts (set by a `mask` forget). */
  suppressClasses?: number[];
  /** Per-channel (RGB) mean and std of [0, 1]-scaled pixels, applied before the model. */
  normalisation: { mean: [number, number, number]; std: [number, number, number] };
}

export interface SaveOptions {
  /** Parts to write; the manifest keeps the current refs of the others. Default: all. */
  parts?: readonly ModulePart[];
  /** Extra manifest attributes (training summary, forgotten classes...). */
  attributes?: Record<string, JsonValue>;
  /** Extra named objects to publish in the same manifest revision (e.g. a receipt). */
  objects?: Record<string, ObjectRef>;
  expectRevision?: number;
}

const MODEL_ATTRIBUTE = 'model';

/** Writes parts as content-addressed objects; unchanged parts map to their existing object. */
export async function storeParts(
  store: ObjectStore,
  model: MoEModel,
  parts: readonly ModulePart[] = MoEModel.parts(model.config.experts),
): Promise<Partial<Record<ModulePart, ObjectRef>>> {
  const refs: Partial<Record<ModulePart, ObjectRef>> = {};
  for (const part of parts) {
    const bytes = serializeParameters(model.part(part).params, { part });
    refs[part] = await putContent(store, bytes, { kind: part === 'router' ? 'router' : 'expert' });
  }
  return refs;
}

/**
 * Publishes one manifest revision naming the given part objects (others keep their refs), the
 * model card and any extra objects and attributes — all or nothing.
 */
export async function publishModel(
  store: ObjectStore,
  card: ModelCard,
  refs: Partial<Record<ModulePart, ObjectRef>>,
  options: Omit<SaveOptions, 'parts'> = {},
): Promise<Manifest> {
  return new ManifestStore(store).update(
    (manifest) => {
      Object.assign(manifest.objects, refs, options.objects ?? {});
      manifest.attributes[MODEL_ATTRIBUTE] = card as unknown as JsonValue;
      Object.assign(manifest.attributes, options.attributes ?? {});
    },
    options.expectRevision === undefined ? {} : { expectRevision: options.expectRevision },
  );
}

/**
 * Stores each part (router, experts) as its own content-addressed object, then publishes one
 * manifest revision naming them. Unchanged parts serialise to identical bytes and so keep their
 * object: a forget request that retrains two experts writes exactly two experts and the router.
 */
export async function saveModel(
  store: ObjectStore,
  model: MoEModel,
  card: Omit<ModelCard, 'config'>,
  options: SaveOptions = {},
): Promise<Manifest> {
  const refs = await storeParts(store, model, options.parts);
  const { parts: _parts, ...rest } = options;
  return publishModel(store, { ...card, config: model.config }, refs, rest);
}

export interface LoadedModel {
  model: MoEModel;
  card: ModelCard;
  manifest: Manifest;
}

/** Loads the model the current manifest (or revision `revision`) names, checking every hash. */
export async function loadModel(store: ObjectStore, revision?: number): Promise<LoadedModel> {
  const manifests = new ManifestStore(store);
  const manifest =
    revision === undefined ? await manifests.read() : await manifests.readRevision(revision);
  if (!manifest || manifest.attributes[MODEL_ATTRIBUTE] === undefined) {
    throw new Error(`no trained model in ${store.describe()} (run \`lethe train\` first)`);
  }
  const card = manifest.attributes[MODEL_ATTRIBUTE] as unknown as ModelCard;
  const model = new MoEModel(card.config);
  try {
    for (const part of MoEModel.parts(card.config.experts)) {
      const ref = manifest.objects[part];
      if (!ref) throw new Error(`manifest revision ${manifest.revision} names no ${part}`);
      deserializeParameters(model.part(part).params, await getVerified(store, ref));
    }
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, card, manifest };
}

/** The card of the stored model, without loading weights. */
export async function readModelCard(store: ObjectStore): Promise<ModelCard | undefined> {
  const manifest = await new ManifestStore(store).read();
  return manifest?.attributes[MODEL_ATTRIBUTE] as unknown as ModelCard | undefined;
}
