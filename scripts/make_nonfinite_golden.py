# Reference data for Inf and NaN inputs, computed by PyTorch (Debian's python3-torch, CPU, one
# thread), in float32 (what users of torch see) and in float64 from the same float32 inputs.
# Writes test/golden-nonfinite/<name>.json in the format of shared/golden/README.md (non-finite
# numbers as the strings "Infinity", "-Infinity", "NaN"). Run by hand: /usr/bin/python3 scripts/make_nonfinite_golden.py
import json, math, os
import torch

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "test", "golden-nonfinite")


def enc(t):
    out = []
    for v in t.reshape(-1).tolist():
        if math.isnan(v):
            out.append("NaN")
        elif math.isinf(v):
            out.append("Infinity" if v > 0 else "-Infinity")
        else:
            out.append(v)
    return out


def run(x, layout, mode, dy, dtype, momentum=0.1):
    n, c = x.shape[0], x.shape[1]
    module = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d}[x.dim()](c, momentum=momentum).to(dtype)
    g = torch.Generator().manual_seed(c * 7 + x.numel())
    with torch.no_grad():
        module.weight.copy_(torch.randn(c, generator=g).to(dtype) + 0.5)
        module.bias.copy_(torch.randn(c, generator=g).to(dtype))
        module.running_mean.copy_(torch.randn(c, generator=g).to(dtype))
        module.running_var.copy_((torch.rand(c, generator=g) + 0.5).to(dtype))
    inputs = {k: getattr(module, k).detach().clone().float() for k in ["weight", "bias", "running_mean", "running_var"]}
    module.train(mode == "train")
    xi = x.to(dtype)
    if layout == "NHWC":
        xi = xi.contiguous(memory_format=torch.channels_last)
    xi = xi.detach().requires_grad_(True)
    y = module(xi)
    y.backward(dy.to(dtype).contiguous(memory_format=torch.channels_last) if layout == "NHWC" else dy.to(dtype))
    res = {"y": y, "dx": xi.grad, "dgamma": module.weight.grad, "dbeta": module.bias.grad}
    if mode == "train":
        res["running_mean"] = module.running_mean
        res["running_var"] = module.running_var
        xd = x.to(dtype)
        dims = [0] + list(range(2, x.dim()))
        res["batch_mean"] = xd.mean(dim=dims)
    mem = lambda t: t.permute(0, 2, 3, 1) if layout == "NHWC" else t
    out = {}
    for k, v in res.items():
        v = v.detach()
        out[k] = enc(mem(v) if v.dim() == 4 else v)
    return inputs, out


def case(name, description, x, layout="NCHW", mode="train"):
    g = torch.Generator().manual_seed(len(name))
    dy = torch.randn(x.shape, generator=g)
    inputs, f32 = run(x, layout, mode, dy, torch.float32)
    _, f64 = run(x, layout, mode, dy, torch.float64)
    mem = (lambda t: t.permute(0, 2, 3, 1)) if layout == "NHWC" else (lambda t: t)
    shape = list(x.shape)
    data = {
        "name": name, "description": description, "torch_version": torch.__version__, "op": "backward", "mode": mode,
        "layout": layout, "memory_order": layout, "shape": shape, "eps": 1e-5, "momentum": 0.1, "affine": True,
        "track_running_stats": True,
        "inputs": {"x": enc(mem(x)), "dy": enc(mem(dy)), **{k: enc(v) for k, v in inputs.items()}, "num_batches_tracked": 0},
        "expected": f32, "expected_f64": f64,
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(data, f)


def base(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


x = base([3, 4, 3, 5], 1); x[1, 2, 0, 3] = math.inf
case("inf_one_channel_nchw", "+Inf inside channel 2 (not among its first values)", x)
x = base([3, 4, 3, 5], 2); x[0, 1, 0, 0] = math.inf
case("inf_first_value_nchw", "+Inf as the very first value of channel 1 (where a pilot shift is taken)", x)
x = base([3, 4, 3, 5], 3); x[0, 0, 0, 0] = -math.inf; x[2, 3, 2, 4] = -math.inf
case("neg_inf_nchw", "-Inf first in channel 0 and last in channel 3", x)
x = base([3, 4, 3, 5], 4); x[1, 1, 1, 1] = math.inf; x[2, 1, 0, 0] = -math.inf
case("both_inf_nchw", "+Inf and -Inf in channel 1", x)
x = base([3, 4, 3, 5], 5); x[0, 2, 1, 2] = math.nan
case("nan_nchw", "NaN in channel 2", x)
x = base([4, 6, 2, 3], 6); x[0, 5, 0, 0] = math.inf; x[3, 2, 1, 1] = math.nan
case("inf_nan_nhwc", "channels-last: +Inf first in channel 5, NaN in channel 2", x, "NHWC")
x = base([16, 5], 7); x[0, 3] = -math.inf
case("inf_nc", "BatchNorm1d on [N, C]: -Inf first in channel 3", x)
x = base([3, 4, 3, 5], 8); x[1, 2, 0, 3] = math.inf; x[2, 0, 1, 1] = math.nan
case("inf_nan_eval_nchw", "eval mode: +Inf and NaN in x with finite running statistics", x, "NCHW", "eval")
print("written to", os.path.abspath(OUT))
