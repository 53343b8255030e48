# Router-capacity bound for routing_objectives.py: the best collateral reachable by routing each test image
# through its router-predicted class to that class group's expert pair, over every partition of the 10 classes
# into 4 groups (sizes 3,3,2,2), each group on its own pair of the 8 experts.
# usage: /usr/bin/python3 routing_partition_bound.py LOG   (LOG: output of routing_objectives.py --router-only)
import sys, ast, itertools, numpy as np
line = [l for l in open(sys.argv[1]) if l.startswith('router confusion')][0]
conf = np.array(ast.literal_eval(line.split('=', 1)[1].strip()), float); C, E = 10, 8
def metrics(group):
    M = np.zeros((C, E))
    for p in range(C): g = group[p]; M[p, 2*g] = M[p, 2*g+1] = 1
    slots = conf @ M; share = slots / slots.sum(1, keepdims=True); util = slots.sum(0) / slots.sum()
    col = []
    for c in range(C):
        order = np.argsort(-share[c]); acc = 0; ch = []
        for j in order:
            ch.append(j); acc += share[c, j]
            if acc >= 0.8 - 1e-9: break
        oth = [o for o in range(C) if o != c]; col.append(slots[oth][:, ch].sum() / slots[oth].sum())
    return np.mean(col), util.min() * E, util.max() * E
best = []
def parts(rem, sizes, cur):
    if not rem: yield list(cur); return
    first = rem[0]; s = sizes[0]
    for comb in itertools.combinations(rem[1:], s - 1):
        g = (first,) + comb; yield from parts([r for r in rem if r not in g], sizes[1:], cur + [g])
seen = 0
for sizes in set(itertools.permutations((3, 3, 2, 2))):
    for P in parts(list(range(C)), sizes, []):
        group = [0] * C
        for gi, g in enumerate(P):
            for c in g: group[c] = gi
        m = metrics(group); best.append((m[0], m[1], m[2], P)); seen += 1
best.sort(key=lambda t: t[0])
print('partitions', seen, 'router acc', conf.trace() / conf.sum())
for b in best[:3]: print('collateral %.1f%% util min %.2f max %.2f groups %s' % (100*b[0], b[1], b[2], b[3]))
