# Routing objectives for expert specialization, Lethe `small` MoE shape (router 16-32 gap, experts
# 32-64-128 flatten, top-2 of 8, 10 CIFAR-10 classes). Derived from
# /work/shared/probes/probe-routing-specialization.py; same model, data pipeline and metrics.
#
# Measures, on the CIFAR-10 test set with deterministic routing (no noise):
#   test accuracy; expert utilisation (share of all top-k slots, as a multiple of the fair share 1/E);
#   per class a "coverage-0.8" plan (experts in descending order of the class's slot share until they
#   cover >= 80% of its slots), the number of experts it picks and its collateral (share of the OTHER
#   classes' slots carried by those experts), averaged over classes.
#
# Router objective = CE + balance + (-beta * MI) + zloss:
#   balance = alpha * E * sum_e f_e * P_e           (Switch; f = slot fraction from the mask, P = mean softmax)
#   MI      = g * H(E) - sum_y p(y) H(E | y)   (g = --he-weight, default 1 = true MI), over a per-sample routing distribution q(e|x):
#     --mi-kind softmax : q = softmax(logits)                        (the probe's MI)
#     --mi-kind slot    : q = s / K with s_e = P(e in top-2) under Plackett-Luce sampling from p:
#                         s_e = p_e * (1 + R - r_e), r_j = p_j / (1 - p_j), R = sum_j r_j
#     --ema D           : p(e|y) and p(e) are smoothed with an EMA (decay D) across batches; the gradient
#                         is that of the entropies evaluated at the EMA point, applied to the batch estimate
#                         (surrogate sum_e qbar_e * log(ema_e)); D=0 is the exact batch-MI gradient.
#   --assign w          : comparison objective, w * CE(target, q_slot) with a fixed class->expert-pair table
#                         (class c -> experts 2c mod 8, 2c+1 mod 8); labels used only in training.
#   --assign-mode greedy: the table is re-derived every step, greedily and with balanced capacities, from an
#                         EMA of p(e|y) (see greedy_assign), so classes the router already groups share experts.
#   --router-only       : capacity check of the router net (see --help).
#   zloss   = --zloss w : w * mean_x logsumexp(logits)^2
#   --warmup F          : beta ramps linearly from 0 to beta over the first F epochs.
#   --noise S           : training-time router noise (std S Gaussian or scale S Gumbel, --noise-type) added
#                         to the logits before top-k; gates always use the clean softmax.
#
# usage: /usr/bin/python3 routing_objectives.py --data DIR [--n 10000] [--epochs 6] [--beta 0]
#          [--mi-kind softmax|slot] [--alpha 0.1] [--noise 1.0] [--noise-type gauss|gumbel] [--warmup 0]
#          [--zloss 0] [--ema 0] [--he-weight 1] [--assign 0] [--assign-mode fixed|greedy] [--router 16,32:gap] [--seed 17] [--threads 1]
# prints one line:  RESULT <knobs> test_acc=..% min_expert_util=..x_fair max=..x_fair
#                   top2_share_mean=..% experts_chosen_mean=.. collateral_mean=..% wall=..s
#
# Measured 2026-12-06 (seed 17, n=10000, 6 epochs, 1 thread, ~4-7 min/run on a shared 2-core box):
#   balance only, noise 1        acc 54.59  util 0.00-3.16x  collateral 77.5%
#   balance only, noise 0        acc 61.75  util 0.31-3.66x  collateral 77.3%
#   --beta 4 --he-weight 2 --noise 0 (slot MI)  acc 56.05  util 0.54-1.48x  collateral 46.9%  (best balanced)
#   --router-only: the 16-32 router alone reaches 36.8% top-1; the best 4-group pair table routed by its
#   predictions gives 46.8% collateral, so the <=25% target is out of reach for this router whatever the loss.
#   --router-only --router S for S in 16,32,64:gap|flatten, 32,64,128:gap|flatten, 64,128,256:gap: at most 62.2% top-1
#   (32,64,128:flatten, an expert's trunk) and a 31.5% bound; 25% needs about 70% (docs/routing.md, router shapes).
import argparse, math, time, numpy as np, torch, torch.nn as nn, torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument('--data', default='/tmp/cifar/cifar-10-batches-bin')
ap.add_argument('--n', type=int, default=10000)
ap.add_argument('--epochs', type=int, default=6)
ap.add_argument('--beta', type=float, default=0.0, help='MI weight')
ap.add_argument('--mi-kind', choices=['softmax', 'slot'], default='slot')
ap.add_argument('--alpha', type=float, default=0.1, help='Switch balance weight')
ap.add_argument('--noise', type=float, default=1.0)
ap.add_argument('--noise-type', choices=['gauss', 'gumbel'], default='gauss')
ap.add_argument('--warmup', type=float, default=0.0, help='epochs of linear beta warm-up')
ap.add_argument('--zloss', type=float, default=0.0)
ap.add_argument('--he-weight', type=float, default=1.0, help='multiplier on the H(E) term inside MI')
ap.add_argument('--assign', type=float, default=0.0, help='weight of CE to a fixed class->expert-pair target (comparison, not MI)')
ap.add_argument('--assign-mode', choices=['fixed', 'greedy'], default='fixed',
                help='greedy: table re-derived every step from an EMA (decay 0.95) of p(e|y) over slot probabilities')
ap.add_argument('--router-only', action='store_true',
                help='capacity check: train the router net alone as a 10-class classifier (CE) and route each test image to the '
                     'fixed --assign table pair of its predicted class; reports the router accuracy and the collateral of that routing')
ap.add_argument('--ema', type=float, default=0.0, help='EMA decay of p(e|y), p(e) estimates')
ap.add_argument('--router', default='16,32:gap',
                help="router shape: conv filters per stage (3x3 conv, BN, ReLU, 2x2 pool), then 'gap' or 'flatten' (e.g. 32,64,128:flatten, the expert's trunk)")
ap.add_argument('--seed', type=int, default=17)
ap.add_argument('--threads', type=int, default=1)
ap.add_argument('--log-every', type=int, default=1, help='print per-epoch lines (0 = quiet)')
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed); np.random.seed(a.seed)
E, K, C = 8, 2, 10
d, n = a.data, a.n

def read(fs):
    arr = np.concatenate([np.fromfile(f'{d}/{f}', np.uint8).reshape(-1, 3073) for f in fs])
    return torch.tensor(arr[:, 1:].reshape(-1, 3, 32, 32)), torch.tensor(arr[:, 0].astype(np.int64))
xtr, ytr = read([f'data_batch_{i}.bin' for i in range(1, 6)]); xte, yte = read(['test_batch.bin'])
sel = torch.randperm(len(xtr))[:n]; xtr, ytr = xtr[sel], ytr[sel]
mean = xtr.float().mean((0, 2, 3), keepdim=True) / 255; std = xtr.float().std((0, 2, 3), keepdim=True) / 255
norm = lambda x: (x.float() / 255 - mean) / std
def stage(i, o): return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
def router(out=E):
    filters, head = a.router.split(':') if ':' in a.router else (a.router, 'gap')
    fs = [int(f) for f in filters.split(',')]; layers, i = [], 3
    for o in fs: layers += stage(i, o); i = o
    side = 32 >> len(fs)
    tail = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(i, out)] if head == 'gap' else [nn.Flatten(), nn.Linear(i * side * side, out)]
    return nn.Sequential(*layers, *tail)
def conv_macs(net):
    # multiply-accumulates of one 32x32 image through `net` (convs and the linear head)
    total, side = 0, 32
    for l in net:
        if isinstance(l, nn.Conv2d): total += l.in_channels * l.out_channels * 9 * side * side
        elif isinstance(l, nn.MaxPool2d): side //= 2
        elif isinstance(l, nn.Linear): total += l.in_features * l.out_features
    return total
def expert(): return nn.Sequential(*stage(3, 32), *stage(32, 64), *stage(64, 128), nn.Flatten(), nn.Linear(128 * 16, C))

class MoE(nn.Module):
    def __init__(s):
        super().__init__(); s.r = router(); s.e = nn.ModuleList(expert() for _ in range(E))
    def forward(s, x, noise=0.0):
        logits = s.r(x); probs = logits.softmax(1)
        if noise:
            if a.noise_type == 'gauss': z = torch.randn_like(logits)
            else: z = -torch.log(-torch.log(torch.rand_like(logits).clamp(1e-9, 1 - 1e-9)))
            noisy = logits + noise * z
        else: noisy = logits
        top = noisy.topk(K, 1).indices; mask = torch.zeros_like(probs).scatter(1, top, 1.0)
        gates = probs * mask; gates = gates / gates.sum(1, keepdim=True)
        out = torch.zeros(len(x), C)
        for j in range(E):
            idx = mask[:, j].nonzero().squeeze(1)
            if len(idx): out = out.index_add(0, idx, gates[idx, j:j+1] * s.e[j](x[idx]))
        return out, logits, probs, mask

def slot_prob(p):
    # P(e in top-2) under Plackett-Luce sampling without replacement from p; rows sum to 2.
    r = p / (1 - p).clamp(min=1e-6)
    return p * (1 + r.sum(1, keepdim=True) - r)

m = MoE(); opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=5e-4)
spe = (n + 127) // 128; steps = a.epochs * spe
sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
# fixed balanced class->expert-pair table for --assign: class c -> experts (2c mod E, 2c+1 mod E)
ASSIGN = torch.zeros(C, E)
for c in range(C): ASSIGN[c, (2 * c) % E] = ASSIGN[c, (2 * c + 1) % E] = 1.0 / K
assign_ema = torch.full((C, E), 1.0 / E)
def greedy_assign(probs, y):
    # Balanced class->expert-pair table from the EMA of p(e|y): visit (class, expert) pairs by descending
    # p(e|y); give the class a unit of that expert if the class has < K units and the expert has spare
    # capacity. Capacities: C*K = 20 units over E = 8 experts -> 4 experts may hold 3 units, the rest 2.
    global ASSIGN, assign_ema
    with torch.no_grad():
        onehot = F.one_hot(y, C).float(); cnt = onehot.sum(0)
        pe_c = (onehot.t() @ (slot_prob(probs) / K)) / cnt.clamp(min=1)[:, None]
        present = (cnt > 0).float()[:, None]
        assign_ema = present * (0.95 * assign_ema + 0.05 * pe_c) + (1 - present) * assign_ema
        hi, lo = (C * K) % E, (C * K) // E          # 4 experts with lo+1 units, others lo
        units_c = [0] * C; units_e = [0] * E; n_hi = 0; T = torch.zeros(C, E)
        for flat in assign_ema.flatten().argsort(descending=True).tolist():
            c, e = divmod(flat, E)
            if units_c[c] >= K or T[c, e] > 0: continue
            if units_e[e] < lo or (units_e[e] == lo and n_hi < hi):
                if units_e[e] == lo: n_hi += 1
                T[c, e] = 1.0 / K; units_c[c] += 1; units_e[e] += 1
        ASSIGN = T
ema_pe_c = torch.full((C, E), 1.0 / E); ema_pe = torch.full((E,), 1.0 / E)

def aux(logits, probs, mask, y, beta):
    global ema_pe_c, ema_pe
    f = mask.mean(0) / K; P = probs.mean(0); loss = a.alpha * E * (f * P).sum()
    if a.zloss: loss = loss + a.zloss * (torch.logsumexp(logits, 1) ** 2).mean()
    if a.assign:
        if a.assign_mode == 'greedy': greedy_assign(probs, y)
        t = ASSIGN[y]                                                             # [B,E], 1/K on the class's pair
        loss = loss - a.assign * (t * (slot_prob(probs) / K + 1e-9).log()).sum(1).mean()
    if not beta: return loss
    q = probs if a.mi_kind == 'softmax' else slot_prob(probs) / K              # [B,E], rows sum to 1
    onehot = F.one_hot(y, C).float(); cnt = onehot.sum(0); pc = cnt / cnt.sum()  # p(y) in batch
    pe_c = (onehot.t() @ q) / cnt.clamp(min=1)[:, None]                           # p(e|y) [C,E]
    pe = q.mean(0)                                                                # p(e)
    if a.ema:
        with torch.no_grad():
            present = (cnt > 0).float()[:, None]
            ema_pe_c = present * (a.ema * ema_pe_c + (1 - a.ema) * pe_c.detach()) + (1 - present) * ema_pe_c
            ema_pe = a.ema * ema_pe + (1 - a.ema) * pe.detach()
        ref_c, ref = ema_pe_c, ema_pe
    else:
        ref_c, ref = pe_c.detach(), pe.detach()
    # surrogate whose gradient is dMI at the reference point (+1 terms vanish since rows sum to 1)
    h_e = -(pe * (ref + 1e-9).log()).sum()
    h_e_c = -(pc[:, None] * pe_c * (ref_c + 1e-9).log()).sum()
    return loss - beta * (a.he_weight * h_e - h_e_c)

if a.router_only:
    m = router(C)
    print(f'router {a.router}: {sum(p.numel() for p in m.parameters())} parameters, '
          f'{conv_macs(m) / conv_macs(expert()):.2f}x an expert\'s multiply-accumulates', flush=True)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
t0 = time.time(); step = 0
for ep in range(a.epochs):
    m.train(); perm = torch.randperm(n)
    for i in range(0, n, 128):
        idx = perm[i:i+128]; x = xtr[idx]
        flip = torch.rand(len(x)) < 0.5; x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = F.pad(x, (4, 4, 4, 4)); dx, dy = np.random.randint(0, 9, 2); x = x[:, :, dy:dy+32, dx:dx+32]
        if a.router_only:
            loss = F.cross_entropy(m(norm(x)), ytr[idx])
        else:
            out, logits, probs, mask = m(norm(x), noise=a.noise)
            beta = a.beta * min(1.0, step / (a.warmup * spe)) if a.warmup else a.beta
            loss = F.cross_entropy(out, ytr[idx]) + aux(logits, probs, mask, ytr[idx], beta)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step(); step += 1
    if a.log_every: print(f'epoch {ep+1} {time.time()-t0:.0f}s loss {loss.item():.3f}', flush=True)

m.eval(); correct = 0; slots = torch.zeros(C, E)
with torch.no_grad():
    for i in range(0, len(xte), 500):
        y = yte[i:i+500]
        if a.router_only:
            out = m(norm(xte[i:i+500])); mask = ASSIGN[out.argmax(1)] * K
        else:
            out, _, probs, mask = m(norm(xte[i:i+500]))
        correct += (out.argmax(1) == y).sum().item(); slots += F.one_hot(y, C).float().t() @ mask
        if a.router_only: conf = (conf if i else torch.zeros(C, C)) + F.one_hot(y, C).float().t() @ F.one_hot(out.argmax(1), C).float()
if a.router_only: print('router confusion[true,pred] =', conf.long().tolist())
share = slots / slots.sum(1, keepdim=True)
util = slots.sum(0) / slots.sum()
collateral, chosen_n, top2 = [], [], []
for c in range(C):
    order = share[c].argsort(descending=True); acc, chosen = 0.0, []
    for j in order.tolist():
        chosen.append(j); acc += share[c, j].item()
        if acc >= 0.8: break
    others = [o for o in range(C) if o != c]
    collateral.append(slots[others][:, chosen].sum().item() / slots[others].sum().item())
    chosen_n.append(len(chosen)); top2.append(share[c, order[:2]].sum().item())
print('share[class,expert] % =\n' + '\n'.join(' '.join(f'{100*v:5.1f}' for v in row) for row in share.tolist()))
print(f'RESULT {"ROUTER-ONLY(acc=router top-1) " if a.router_only else ""}beta={a.beta} mi_kind={a.mi_kind} alpha={a.alpha} noise={a.noise}{"" if a.noise_type == "gauss" else "(gumbel)"} '
      f'router={a.router} warmup={a.warmup} zloss={a.zloss} ema={a.ema} he_w={a.he_weight} assign={a.assign}{"(greedy)" if a.assign and a.assign_mode == "greedy" else ""} seed={a.seed} n={n} epochs={a.epochs} '
      f'test_acc={100*correct/len(xte):.2f}% '
      f'min_expert_util={util.min().item()*E:.2f}x_fair max={util.max().item()*E:.2f}x_fair '
      f'top2_share_mean={100*np.mean(top2):.1f}% experts_chosen_mean={np.mean(chosen_n):.2f} '
      f'collateral_mean={100*np.mean(collateral):.1f}% wall={time.time()-t0:.0f}s', flush=True)
