# Reference data for frozen BN (torchvision's FrozenBatchNorm2d: y = x * scale + shift with
# scale = weight * (running_var + eps)^-0.5, shift = bias - running_mean * scale), computed by PyTorch
# (Debian's python3-torch 1.13, CPU, one thread). torchvision is not needed: F.batch_norm with
# training=False is the same function, and its autograd with requires_grad on x only is the frozen
# backward (dx = dy * scale; no gradient reaches weight or bias, checked here). Each case is computed
# on float32 tensors (what users of torch get) and on float64 copies of the same float32 values (the
# exact answer); torchvision's x * scale + shift form is checked against the float64 answer too.
# A BatchNorm module with requires_grad_(False) in train() mode would update its running statistics:
# the frozen module's forward is eval-mode BN, whatever the mode, which these cases pin down.
# Writes test/golden-frozen/<name>.json. Run by hand: /usr/bin/python3 scripts/make_frozen_golden.py
#
# Format (tensors flattened in memory order: channels-first [N, C, ...], or channels-last [N, ..., C];
# float32 values as the shortest decimals that round back to them, float64 values exactly):
#   name, description, torch_version, layout ('channels-first' | 'channels-last'), shape (in memory
#   order), eps, affine
#   inputs: x, dy, running_mean, running_var, num_batches_tracked, and weight, bias when affine
#   expected:     y, dx   torch's float32 F.batch_norm(training=False) and its autograd
#   expected_f64: y, dx   the same in float64
#   torch_f32_max_abs_err: y, dx   max |expected - expected_f64|
#   frozen_formula_max_abs_err: y   max |x * scale + shift (float32, as torchvision) - expected_f64.y|
#   param_grads: 'none' (weight and bias got no gradient)
import json, os
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "test", "golden-frozen")


def f32list(t):
    return [float(repr(np.float32(v))) if np.isfinite(v) else v for v in t.detach().reshape(-1).numpy()]


def f64list(t):
    return t.detach().reshape(-1).tolist()


def frozen(x, dy, weight, bias, rm, rv, eps):
    """Frozen BN on these tensors: y, dx, and whether weight/bias got gradients."""
    x = x.clone().requires_grad_(True)
    y = F.batch_norm(x, rm.clone(), rv.clone(), weight, bias, training=False, eps=eps)
    (y * dy).sum().backward()
    no_grads = all(p is None or p.grad is None for p in (weight, bias))
    return y.detach(), x.grad, no_grads


def case(name, description, shape, layout="channels-first", eps=1e-5, affine=True, stats=None, scale=1.0, offset=0.0):
    c = shape[1]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    x = torch.randn(shape, generator=g) * scale + offset
    dy = torch.randn(shape, generator=g)
    weight = torch.randn(c, generator=g) * 0.5 + 1 if affine else None
    bias = torch.randn(c, generator=g) if affine else None
    if stats:
        rm, rv = stats(c)
    else:
        rm, rv = torch.randn(c, generator=g) * scale + offset, (torch.rand(c, generator=g) * 2 + 0.1) * scale**2
    rm, rv = rm.float(), rv.float()

    y32, dx32, none32 = frozen(x, dy, weight, bias, rm, rv, eps)
    d = lambda t: None if t is None else t.double()
    y64, dx64, none64 = frozen(d(x), d(dy), d(weight), d(bias), d(rm), d(rv), eps)
    assert none32 and none64, name
    # torchvision's FrozenBatchNorm2d form, in float32
    w = weight if affine else torch.ones(c)
    b = bias if affine else torch.zeros(c)
    s = w * (rv + eps).rsqrt()
    view = [1, c] + [1] * (len(shape) - 2)
    formula = x * s.reshape(view) + (b - rm * s).reshape(view)

    err = lambda a, b: (a.double() - b).abs().max().item()
    to_mem = (lambda t: t.movedim(1, -1)) if layout == "channels-last" else (lambda t: t)
    mem_shape = list(to_mem(torch.empty(shape)).shape)
    inputs = {"x": f32list(to_mem(x)), "dy": f32list(to_mem(dy)), "running_mean": f32list(rm), "running_var": f32list(rv),
              "num_batches_tracked": 17}
    if affine:
        inputs["weight"], inputs["bias"] = f32list(weight), f32list(bias)
    data = {
        "name": name, "description": description, "torch_version": torch.__version__, "layout": layout,
        "shape": mem_shape, "eps": eps, "affine": affine, "inputs": inputs,
        "expected": {"y": f32list(to_mem(y32)), "dx": f32list(to_mem(dx32))},
        "expected_f64": {"y": f64list(to_mem(y64)), "dx": f64list(to_mem(dx64))},
        "torch_f32_max_abs_err": {"y": err(y32, y64), "dx": err(dx32, dx64)},
        "frozen_formula_max_abs_err": {"y": err(formula, y64)},
        "param_grads": "none",
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))


def tiny_var(c):
    """Running variances at, below and far above eps, means far from 0."""
    return torch.randn(c) * 1e3, torch.tensor([0.0, 1e-8, 1e-5, 1e4, 0.5, 3.0][:c] + [1.0] * max(0, c - 6))


os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)  # tiny_var's draws
case("nc_affine", "BatchNorm1d on [N, C]", [6, 5])
case("ncl_noaffine", "BatchNorm1d(affine=False) on [N, C, L]", [3, 4, 7], affine=False)
case("nchw_affine", "BatchNorm2d", [2, 3, 5, 4])
case("nchw_eps1e-3_offset", "BatchNorm2d, eps 1e-3, data and running means near 1e3", [2, 4, 3, 3], eps=1e-3, offset=1e3)
case("nchw_tiny_var", "running variances 0 to 1e4, running means ~1e3", [2, 6, 3, 2], stats=tiny_var)
case("ncdhw_affine", "BatchNorm3d", [2, 3, 2, 3, 2])
case("nhwc_affine", "BatchNorm2d, channels-last memory", [2, 5, 3, 4], layout="channels-last")
case("nhwc_noaffine_scaled", "channels-last, affine=False, data scaled by 1e-3", [3, 7, 2, 2], layout="channels-last", affine=False, scale=1e-3)
