# Reference data for the fused ReLU, computed by PyTorch (Debian's python3-torch, CPU, one thread):
# y = torch.relu(F.batch_norm(x, ...)) and its autograd (dx, dweight, dbias) for a given dy, in
# training and eval mode, in float32 (what users of torch see) and in float64 from the same float32
# inputs. Writes test/golden-relu/<name>.json in the format of test/golden/ (shared/golden/README.md:
# op "backward", inputs x, dy, gamma, beta, running_mean, running_var; expected, expected_f64 and
# torch_f32_max_abs_err for y, batch_mean, save_invstd, running_mean, running_var, dx, dgamma, dbeta).
# Biases are drawn so that about half the outputs are clipped. No output lies near 0 except exact
# zeros (where the float32 and float64 answers agree the output is 0): an output within rounding of 0
# could be clipped in one precision and not the other, and the gradient there is dy or 0. Cases
# "zeros_*" have many exact zeros: integer data around a mean of exactly 0, bias 0.
# Run by hand: /usr/bin/python3 scripts/make_relu_golden.py
import json, os
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "test", "golden-relu")
EPS, MOMENTUM = 1e-5, 0.1
# an output this close to 0 (relative to the largest) is moved away, see above
MARGIN = 1e-4


def f32list(t):
    """Shortest decimals that round back to each float32."""
    return [float(repr(np.float32(v))) for v in t.detach().reshape(-1).tolist()]


def f64list(t):
    return t.detach().reshape(-1).tolist()


def memory(t, layout):
    return t.permute(0, 2, 3, 1) if layout == "NHWC" and t.dim() == 4 else t


def run(x, dy, p, mode, layout, dtype, affine):
    """torch.relu(F.batch_norm(...)) and its gradients, in `dtype`, from the float32 inputs."""
    fmt = torch.channels_last if layout == "NHWC" else torch.contiguous_format
    xi = x.detach().to(dtype).contiguous(memory_format=fmt).clone().requires_grad_(True)
    w = p["gamma"].to(dtype).clone().requires_grad_(True) if affine else None
    b = p["beta"].to(dtype).clone().requires_grad_(True) if affine else None
    rm, rv = p["running_mean"].to(dtype).clone(), p["running_var"].to(dtype).clone()
    training = mode == "train"
    bn = F.batch_norm(xi, rm, rv, w, b, training=training, momentum=MOMENTUM, eps=EPS)
    y = torch.relu(bn)
    y.backward(dy.to(dtype).contiguous(memory_format=fmt))
    res = {"y": y, "dx": xi.grad}
    if affine:
        res["dgamma"], res["dbeta"] = w.grad, b.grad
    if training:
        _, mean, invstd = torch.native_batch_norm(
            x.to(dtype), None if w is None else w.detach(), None if b is None else b.detach(), p["running_mean"].to(dtype).clone(), p["running_var"].to(dtype).clone(), True, MOMENTUM, EPS)
        res.update({"batch_mean": mean, "save_invstd": invstd, "running_mean": rm, "running_var": rv})
    return {k: memory(v.detach(), layout) for k, v in res.items()}, memory(bn.detach(), layout)


def params(g, c, affine, zero_bias):
    return {
        "gamma": torch.randn(c, generator=g) * 0.5 + (1 if affine else 0) + 0.25,
        "beta": torch.zeros(c) if zero_bias else torch.randn(c, generator=g) * 0.6,
        "running_mean": torch.zeros(c) if zero_bias else torch.randn(c, generator=g) * 0.5,
        "running_var": torch.rand(c, generator=g) * 2 + 0.3,
    }


def case(name, description, x, layout="NCHW", mode="train", affine=True, zeros=False):
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    c = x.shape[1]
    p = params(g, c, affine, zeros)
    dy = torch.randn(x.shape, generator=g)
    # move x off outputs that lie within MARGIN of 0 (not exactly 0), until none does
    for _ in range(50):
        _, pre = run(x, dy, p, mode, layout, torch.float64, affine)
        near = (pre != 0) & (pre.abs() < MARGIN * pre.abs().max())
        if not near.any():
            break
        x = x.clone()
        near = near.permute(0, 3, 1, 2) if layout == "NHWC" else near
        x[near] += 0.01 * torch.where(torch.rand(int(near.sum()), generator=g) < 0.5, -1.0, 1.0)
    else:
        raise RuntimeError(f"{name}: outputs near 0 remain")
    f32, pre32 = run(x, dy, p, mode, layout, torch.float32, affine)
    f64, pre64 = run(x, dy, p, mode, layout, torch.float64, affine)
    # both precisions clip the same outputs, and the exact zeros are zeros in both
    assert torch.equal(pre32 <= 0, pre64 <= 0), name
    assert torch.equal(pre32 == 0, pre64 == 0), name
    clipped = float((pre64 <= 0).double().mean())
    zeros_n = int((pre64 == 0).sum())
    shape = list(x.shape)
    inputs = {"x": f32list(memory(x, layout)), "dy": f32list(memory(dy, layout))}
    if affine:
        inputs.update({"gamma": f32list(p["gamma"]), "beta": f32list(p["beta"])})
    inputs.update({"running_mean": f32list(p["running_mean"]), "running_var": f32list(p["running_var"]), "num_batches_tracked": 0})
    data = {
        "name": name, "description": f"{description} ({clipped:.0%} of outputs clipped, {zeros_n} exactly 0)",
        "torch_version": torch.__version__, "op": "backward", "activation": "relu", "mode": mode, "layout": layout,
        "memory_order": layout, "shape": shape, "eps": EPS, "momentum": MOMENTUM, "affine": affine, "track_running_stats": True,
        "inputs": inputs,
        "expected": {k: f32list(v) for k, v in f32.items()},
        "expected_f64": {k: f64list(v) for k, v in f64.items()},
        "torch_f32_max_abs_err": {k: float((f32[k].double() - f64[k]).abs().max()) for k in f32},
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))


def randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def symmetric_integers(shape, seed):
    """Integers in [-3, 3], many of them 0, each channel summing to exactly 0 (its mean is 0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, shape, generator=g).float()
    x[torch.rand(shape, generator=g) < 0.3] = 0
    xc = x.movedim(1, -1).reshape(-1, shape[1])  # [values, C]
    xc[len(xc) // 2:] = -xc[: len(xc) - len(xc) // 2] if len(xc) % 2 == 0 else xc[len(xc) // 2:]
    if len(xc) % 2:
        xc[-1] = 0
        xc[len(xc) // 2: -1] = -xc[: len(xc) // 2]
    out = xc.reshape([shape[0], *shape[2:], shape[1]]).movedim(-1, 1).contiguous()
    assert torch.all(out.sum(dim=[d for d in range(len(shape)) if d != 1]) == 0)
    return out


os.makedirs(OUT, exist_ok=True)
case("nchw_train", "NCHW, spatial 15 (SIMD tails 16 and 4)", randn([4, 3, 5, 3], 1))
case("nchw_eval", "NCHW eval mode, spatial 15", randn([4, 3, 5, 3], 2), mode="eval")
case("nchw_train_s16", "NCHW, spatial 16 (whole vectors)", randn([2, 5, 4, 4], 3) * 2 + 1)
case("nchw_train_s63", "NCHW, spatial 63 (every loop's tail)", randn([2, 3, 7, 9], 4))
case("ncl_train_noaffine", "NCL (BatchNorm1d), no affine parameters, length 21", randn([3, 4, 21], 5))
case("nhwc_train", "NHWC (channels-last), 7 channels (lanes 4 + 3)", randn([3, 7, 2, 3], 6), "NHWC")
case("nhwc_eval", "NHWC eval mode, 7 channels", randn([3, 7, 2, 3], 7), "NHWC", "eval")
case("nc_train", "[N, C] (BatchNorm1d), 9 channels", randn([16, 9], 8) * 3 - 2, "NC")
case("nc_eval", "[N, C] eval mode, 9 channels", randn([16, 9], 9), "NC", "eval")
case("zeros_nchw_train", "NCHW, integer data with channel means exactly 0 and bias 0", symmetric_integers([4, 3, 3, 3], 10), zeros=True)
case("zeros_nhwc_eval", "NHWC eval mode, integer data with many zeros, running mean 0 and bias 0", symmetric_integers([2, 6, 3, 3], 11), "NHWC", "eval", zeros=True)
case("zeros_nc_train", "[N, C], integer data with channel means exactly 0 and bias 0", symmetric_integers([12, 5], 12), "NC", zeros=True)
print("written to", os.path.abspath(OUT))
