"""The peer of distill-gate's KD step in PyTorch, for `npm run bench`: the same teacher weights,
student architecture, loss, optimiser, batch size and epochs, over the same .npy transfer set.

    python3 kd_torch.py WORKSPACE EPOCHS      # prints one JSON line of figures

Run with Debian's python3-torch (and libopenblas0-pthread for the OpenBLAS figures).
"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

workspace, epochs = sys.argv[1], int(sys.argv[2])
torch.manual_seed(7)

# The teacher: the Dense stack of the workspace's TF.js model.json, weights in manifest order.
with open(f"{workspace}/teacher/model.json") as f:
    manifest = json.load(f)
shard = np.fromfile(f"{workspace}/teacher/{manifest['weightsManifest'][0]['paths'][0]}", dtype=np.float32)
tensors, offset = [], 0
for spec in manifest["weightsManifest"][0]["weights"]:
    size = int(np.prod(spec["shape"]))
    tensors.append(torch.from_numpy(shard[offset:offset + size].reshape(spec["shape"]).copy()))
    offset += size
teacher_layers = []
for kernel, bias in zip(tensors[0::2], tensors[1::2]):
    layer = torch.nn.Linear(kernel.shape[0], kernel.shape[1])
    layer.weight.data = kernel.t().contiguous()
    layer.bias.data = bias
    teacher_layers += [layer, torch.nn.ReLU()]
teacher = torch.nn.Sequential(*teacher_layers[:-1]).eval()

x = torch.from_numpy(np.load(f"{workspace}/train_x.npy"))
y = torch.from_numpy(np.load(f"{workspace}/train_y.npy").astype(np.int64))
T, alpha, batch = 4.0, 0.9, 64


def student_model():
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def kd_loss(s, t, labels):
    soft = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True)
    return alpha * T * T * soft + (1 - alpha) * F.cross_entropy(s, labels)


def run(cached):
    student = student_model()
    optimiser = torch.optim.Adam(student.parameters(), lr=0.001)
    start = time.perf_counter()
    with torch.no_grad():
        logits = teacher(x) if cached else None
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            if cached:
                t = logits[idx]
            else:
                with torch.no_grad():
                    t = teacher(x[idx])
            loss = kd_loss(student(x[idx]), t, y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return time.perf_counter() - start


# The first run is what a CI job would see (allocator and thread pool warming up); the later two
# are steady state.
cold = run(True)
online, cached = run(False), run(True)
samples = len(x) * epochs
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "online_samples_per_s": samples / online, "cached_samples_per_s": samples / cached, "cached_seconds": cached, "cold_cached_seconds": cold}))
