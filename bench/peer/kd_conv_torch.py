"""The peer of distill-gate's KD step for convolutional students, in PyTorch, for `npm run bench:conv`:
the same student (built from the same `student.layers` list as distill-gate's YAML, with Keras's
padding, strides, initialisers and batch-norm settings), loss, optimiser, batch size, epochs,
learning rate and seed, over the same .npy transfer set, from the teacher's outputs stored by the
bench (teacher_train_logits.npy, teacher_eval_logits.npy).

    python3 kd_conv_torch.py WORKSPACE PEER_JSON      # prints one JSON line of figures

PEER_JSON (written by bench/conv.ts): {layers, inputShape: [H, W, C], classes, temperature, alpha,
batchSize, learningRate, seed, epochs, and optionally threads: torch.set_num_threads, as
distill.threads on distill-gate's side}. Data is NHWC as TF.js has it, transposed to NCHW here.
Run with Debian's python3-torch.
"""
import json
import math
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

workspace, settings_file = sys.argv[1], sys.argv[2]
with open(settings_file) as f:
    settings = json.load(f)
torch.manual_seed(settings["seed"])
if "threads" in settings:
    torch.set_num_threads(int(settings["threads"]))
T, alpha, batch = float(settings["temperature"]), float(settings["alpha"]), int(settings["batchSize"])
epochs, lr = int(settings["epochs"]), float(settings["learningRate"])


def nchw(name):
    return torch.from_numpy(np.load(f"{workspace}/{name}")).permute(0, 3, 1, 2).contiguous()


x = nchw("train_x.npy")
y = torch.from_numpy(np.load(f"{workspace}/train_y.npy").astype(np.int64))
logits = torch.from_numpy(np.load(f"{workspace}/teacher_train_logits.npy"))
eval_x = nchw("eval_x.npy")
eval_logits = torch.from_numpy(np.load(f"{workspace}/teacher_eval_logits.npy"))

# ---------------------------------------------------------------------------------------------
# The student: tf.layers semantics in torch modules.

ACTIVATIONS = {
    None: torch.nn.Identity, "linear": torch.nn.Identity, "relu": torch.nn.ReLU, "relu6": torch.nn.ReLU6,
    "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU, "selu": torch.nn.SELU,
    "softplus": torch.nn.Softplus, "swish": torch.nn.SiLU, "softmax": lambda: torch.nn.Softmax(dim=1),
}


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def same_pads(size, kernel, stride):
    """TF's 'same' padding for one axis: (before, after), the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Pad(torch.nn.Module):
    """Asymmetric padding, where TF's 'same' is not symmetric (even kernels, strides)."""

    def __init__(self, pads, value=0.0):
        super().__init__()
        self.pads, self.value = pads, value

    def forward(self, t):
        return F.pad(t, self.pads, value=self.value)


class FlattenNHWC(torch.nn.Module):
    """Keras flattens channels-last: the Dense weights after it line up with TF.js's."""

    def forward(self, t):
        return t.permute(0, 2, 3, 1).flatten(1) if t.dim() == 4 else t.flatten(1)


def padded(module, padding, shape, kernel, stride, value=0.0):
    """Returns ([modules], output spatial shape) for a window op with TF padding semantics."""
    (h, w), (kh, kw), (sh, sw) = shape, kernel, stride
    if padding == "valid":
        return [module], ((h - kh) // sh + 1, (w - kw) // sw + 1)
    top, bottom = same_pads(h, kh, sh)
    left, right = same_pads(w, kw, sw)
    pad = [] if top == bottom == left == right == 0 else [Pad((left, right, top, bottom), value)]
    return pad + [module], (math.ceil(h / sh), math.ceil(w / sw))


def build_student(layers, input_shape):
    h, w, c = input_shape
    shape, channels, flat = (h, w), c, None
    modules = []
    for spec in layers:
        kind = spec["type"]
        if kind == "conv2d":
            kernel, stride = pair(spec["kernelSize"]), pair(spec.get("strides", 1))
            conv = torch.nn.Conv2d(channels, spec["filters"], kernel, stride, bias=spec.get("useBias", True))
            torch.nn.init.xavier_uniform_(conv.weight)  # Keras's glorotUniform (same fans)
            if conv.bias is not None:
                torch.nn.init.zeros_(conv.bias)
            ops, shape = padded(conv, spec.get("padding", "valid"), shape, kernel, stride)
            modules += ops + [ACTIVATIONS[spec.get("activation")]()]
            channels = spec["filters"]
        elif kind == "depthwiseConv2d":
            kernel, stride = pair(spec["kernelSize"]), pair(spec.get("strides", 1))
            out = channels * spec.get("depthMultiplier", 1)
            conv = torch.nn.Conv2d(channels, out, kernel, stride, groups=channels, bias=spec.get("useBias", True))
            # Keras's glorotUniform on [kh, kw, C, m] has fans kh*kw*C and kh*kw*m, torch's on
            # [C*m, 1, kh, kw] kh*kw and kh*kw*C*m: the same bound where m is 1.
            torch.nn.init.xavier_uniform_(conv.weight)
            if conv.bias is not None:
                torch.nn.init.zeros_(conv.bias)
            ops, shape = padded(conv, spec.get("padding", "valid"), shape, kernel, stride)
            modules += ops + [ACTIVATIONS[spec.get("activation")]()]
            channels = out
        elif kind in ("maxPooling2d", "averagePooling2d"):
            kernel = pair(spec.get("poolSize", 2))
            stride = pair(spec.get("strides") or kernel)
            if kind == "maxPooling2d":
                pool, value = torch.nn.MaxPool2d(kernel, stride), -math.inf
            elif spec.get("padding", "valid") == "valid":
                pool, value = torch.nn.AvgPool2d(kernel, stride), 0.0
            else:
                raise NotImplementedError("averagePooling2d with padding 'same' (TF leaves the padding out of the mean)")
            ops, shape = padded(pool, spec.get("padding", "valid"), shape, kernel, stride, value)
            modules += ops
        elif kind == "batchNormalization":
            # Keras: momentum 0.99 for the moving averages (torch's 0.01), epsilon 1e-3.
            modules.append(torch.nn.BatchNorm2d(channels, eps=spec.get("epsilon", 1e-3), momentum=1 - spec.get("momentum", 0.99))
                           if flat is None else torch.nn.BatchNorm1d(flat, eps=spec.get("epsilon", 1e-3), momentum=1 - spec.get("momentum", 0.99)))
        elif kind == "activation":
            modules.append(ACTIVATIONS[spec["activation"]]())
        elif kind == "dropout":
            modules.append(torch.nn.Dropout(spec["rate"]))
        elif kind == "flatten":
            modules.append(FlattenNHWC())
            flat = channels * shape[0] * shape[1]
        elif kind in ("globalAveragePooling2d", "globalMaxPooling2d"):
            modules += [torch.nn.AdaptiveAvgPool2d(1) if kind == "globalAveragePooling2d" else torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten()]
            flat = channels
        elif kind == "dense":
            if flat is None:
                raise NotImplementedError("dense on a 4-D input (add flatten first)")
            linear = torch.nn.Linear(flat, spec["units"], bias=spec.get("useBias", True))
            torch.nn.init.xavier_uniform_(linear.weight)
            if linear.bias is not None:
                torch.nn.init.zeros_(linear.bias)
            modules += [linear, ACTIVATIONS[spec.get("activation")]()]
            flat = spec["units"]
        else:
            raise NotImplementedError(f"student layer type {kind}")
    return torch.nn.Sequential(*[m for m in modules if not isinstance(m, torch.nn.Identity)])


# ---------------------------------------------------------------------------------------------


def kd_loss(s, t, labels):
    # The same formula as bench/peer/kd_torch.py (and src/distill/loss.ts).
    soft = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True)
    return alpha * T * T * soft + (1 - alpha) * F.cross_entropy(s, labels)


student = build_student(settings["layers"], settings["inputShape"])
# Adam with the epsilon tf.train.adam and distill-gate's FlatAdam use on float32 backends.
optimiser = torch.optim.Adam(student.parameters(), lr=lr, eps=1e-7)
start = time.perf_counter()
student.train()
for epoch in range(epochs):
    order = torch.randperm(len(x))
    for i in range(0, len(x), batch):
        idx = order[i:i + batch]
        loss = kd_loss(student(x[idx]), logits[idx], y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    print(f"    torch | epoch {epoch + 1}/{epochs}  loss {loss.item():.5f}", file=sys.stderr)
seconds = time.perf_counter() - start

student.eval()
with torch.no_grad():
    predicted = torch.cat([student(eval_x[i:i + 512]) for i in range(0, len(eval_x), 512)]).argmax(-1)
agreement = (predicted == eval_logits.argmax(-1)).double().mean().item()
def peak_rss_mib():
    """VmHWM (starts afresh at exec); ru_maxrss keeps the parent's peak across fork and exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


print(json.dumps({
    "torch": torch.__version__, "threads": torch.get_num_threads(), "seconds": seconds, "agreement": agreement,
    "peak_rss_mib": peak_rss_mib(),
    "params": sum(p.numel() for p in student.parameters()),
}))
