/** What placement needs to know of a worker. */
export interface PlacementWorker {
  id: string;
  capacity: number;
}

/**
 * Places experts 0..E-1 on live workers: experts stay where they are when their worker is still
 * live and within capacity; the others go, one at a time, to the live worker holding the fewest
 * (ties: the earliest registered). With `rebalance`, experts also move off workers holding more
 * than their share to workers holding fewer, so a worker that joins takes load. Returns the new
 * placement; experts that fit nowhere are absent (unassigned).
 */
export function placeExperts(
  experts: number,
  workers: readonly PlacementWorker[],
  current: ReadonlyMap<number, string>,
  options: { rebalance?: boolean } = {},
): Map<number, string> {
  const load = new Map(workers.map((w) => [w.id, 0]));
  const capacity = new Map(workers.map((w) => [w.id, w.capacity]));
  const placement = new Map<number, string>();
  for (let e = 0; e < experts; e++) {
    const worker = current.get(e);
    if (worker !== undefined && load.has(worker) && load.get(worker)! < capacity.get(worker)!) {
      placement.set(e, worker);
      load.set(worker, load.get(worker)! + 1);
    }
  }
  const leastLoaded = (): string | undefined => {
    let best: string | undefined;
    for (const w of workers) {
      const n = load.get(w.id)!;
      if (n >= capacity.get(w.id)!) continue;
      if (best === undefined || n < load.get(best)!) best = w.id;
    }
    return best;
  };
  for (let e = 0; e < experts; e++) {
    if (placement.has(e)) continue;
    const worker = leastLoaded();
    if (worker === undefined) continue;
    placement.set(e, worker);
    load.set(worker, load.get(worker)! + 1);
  }
  if (options.rebalance) {
    // Move one expert at a time from the most to the least loaded worker while that narrows the
    // gap; highest expert ids move first, so low ids keep their homes.
    for (;;) {
      const target = leastLoaded();
      let source: string | undefined;
      for (const w of workers) {
        if (source === undefined || load.get(w.id)! > load.get(source)!) source = w.id;
      }
      if (target === undefined || source === undefined) break;
      if (load.get(source)! - load.get(target)! < 2) break;
      const moving = [...placement].filter(([, w]) => w === source).map(([e]) => e);
      const e = Math.max(...moving);
      placement.set(e, target);
      load.set(source, load.get(source)! - 1);
      load.set(target, load.get(target)! + 1);
    }
  }
  return placement;
}
