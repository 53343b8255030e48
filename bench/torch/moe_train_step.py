"""The Lethe MoE (same presets, routing and losses) in PyTorch, for throughput comparison.

usage: moe_train_step.py '<json config>'  ->  prints one JSON line {"imagesPerSecond": ...}
Runs on one CPU thread, like the TensorFlow.js wasm backend in Node.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_net(spec, in_ch, hw, outputs):
    layers = []
    h = hw
    for stage in spec["stages"]:
        for c in range(stage["convs"]):
            layers += [
                nn.Conv2d(in_ch, stage["filters"], 3, padding=1, bias=False),
                nn.BatchNorm2d(stage["filters"], eps=1e-3, momentum=0.1),
                nn.ReLU(inplace=True),
            ]
            in_ch = stage["filters"]
        if stage["pool"]:
            layers.append(nn.MaxPool2d(2))
            h //= 2
    if spec["head"] == "gap":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, outputs)]
    else:
        layers += [nn.Flatten(), nn.Linear(in_ch * h * h, outputs)]
    return nn.Sequential(*layers)


class MoE(nn.Module):
    def __init__(self, preset, experts, top_k, classes):
        super().__init__()
        self.router = conv_net(preset["router"], 3, 32, experts)
        self.experts = nn.ModuleList(conv_net(preset["expert"], 3, 32, classes) for _ in range(experts))
        self.top_k = top_k
        self.classes = classes

    def forward(self, x):
        logits = self.router(x)
        logits = logits + torch.randn_like(logits)
        probs = F.softmax(logits, dim=1)
        top = logits.topk(self.top_k, dim=1).indices
        mask = torch.zeros_like(probs).scatter_(1, top, 1.0)
        gates = probs * mask
        gates = gates / (gates.sum(1, keepdim=True) + 1e-9)
        out = x.new_zeros(x.shape[0], self.classes)
        for e, expert in enumerate(self.experts):
            idx = mask[:, e].nonzero(as_tuple=True)[0]
            if idx.numel() == 0:
                continue
            y = expert(x.index_select(0, idx)) * gates.index_select(0, idx)[:, e : e + 1]
            out = out.index_add(0, idx, y)
        share = mask.sum(0) / mask.sum()
        balance = 0.01 * probs.shape[1] * (share.detach() * probs.mean(0)).sum()
        return out, balance


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg.get("threads", 1))
    torch.manual_seed(0)
    model = MoE(cfg["preset"], cfg["experts"], cfg["topK"], cfg["classes"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    b = cfg["batch"]
    x = torch.randn(b, 3, 32, 32)
    y = torch.randint(0, cfg["classes"], (b,))
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        out, balance = model(x)
        loss = F.cross_entropy(out, y) + balance
        loss.backward()
        opt.step()

    for _ in range(cfg.get("warmup", 3)):
        step()
    steps = cfg["steps"]
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"imagesPerSecond": steps * b / seconds, "seconds": seconds, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
