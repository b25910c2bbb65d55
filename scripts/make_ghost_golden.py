# Reference data for ghost (virtual) batches, computed by PyTorch (Debian's python3-torch, CPU, one
# thread): torch.nn.BatchNorm1d/2d/3d called chunk by chunk on consecutive runs of v samples along N (the
# last chunk the rest), the outputs concatenated, and autograd through all chunks, in float32 (what users
# of torch get) and on a float64 copy of the same float32 module and inputs (the exact answer).
# Writes test/golden-ghost/<name>.json. Run by hand: /usr/bin/python3 scripts/make_ghost_golden.py
#
# Format (compact JSON; tensors flattened in memory order: NHWC cases are channels-last, [N, H, W, C]):
#   layout (NC, NCL, NCHW, NCDHW or NHWC), shape (PyTorch's logical [N, C, ...]), virtual_batch_size,
#   chunks, eps, momentum (null: cumulative average), affine
#   inputs: x, dy, weight and bias (null without affine), running_mean, running_var, num_batches_tracked
#   expected_f64: y, dx, dweight, dbias (null without affine), running_mean, running_var,
#                 num_batches_tracked (after the call), mean and invstd (per chunk, chunk-major: chunks * C,
#                 torch.native_batch_norm's save_mean and save_invstd of each chunk)
#   torch_f32_max_abs_err: max |torch float32 - float64| for each of those (not the counter)
import copy, json, os
import torch
from torch import nn

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "test", "golden-ghost")
BN = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


def memory_order(t, layout):
    """Flattened in the order the library reads it: channels-last moves C to the end."""
    if layout == "NHWC":
        t = t.permute(0, 2, 3, 1)
    return t.detach().reshape(-1).tolist()


def run(module, x, dy, v):
    """The module on each chunk of v samples in turn; y concatenated, then autograd through all of it."""
    x = x.detach().clone().requires_grad_(True)
    y = torch.cat([module(xk) for xk in x.split(v, dim=0)], dim=0)
    y.backward(dy)
    stats = [torch.native_batch_norm(xk.detach(), None, None, None, None, True, 0.0, module.eps)[1:] for xk in x.split(v, dim=0)]
    return {
        "y": y,
        "dx": x.grad,
        "dweight": module.weight.grad if module.affine else None,
        "dbias": module.bias.grad if module.affine else None,
        "running_mean": module.running_mean,
        "running_var": module.running_var,
        "mean": torch.cat([m for m, _ in stats]),
        "invstd": torch.cat([s for _, s in stats]),
    }


def case(name, description, layout, shape, v, momentum=0.1, affine=True, eps=1e-5, tracked=0, offset=0.0, scale=1.0):
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    c = shape[1]
    module = BN[len(shape)](c, eps=eps, momentum=momentum, affine=affine)
    with torch.no_grad():
        if affine:
            module.weight.copy_(torch.randn(c, generator=g) + 0.5)
            module.bias.copy_(torch.randn(c, generator=g))
        module.running_mean.copy_(torch.randn(c, generator=g))
        module.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        module.num_batches_tracked.fill_(tracked)
    module.train()
    per_channel = torch.randn(c, generator=g).reshape(1, c, *([1] * (len(shape) - 2)))
    x = torch.randn(shape, generator=g) * scale + offset + per_channel
    dy = torch.randn(shape, generator=g)
    if layout == "NHWC":
        x = x.contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last)
    inputs = {
        "x": memory_order(x, layout),
        "dy": memory_order(dy, layout),
        "weight": module.weight.tolist() if affine else None,
        "bias": module.bias.tolist() if affine else None,
        "running_mean": module.running_mean.tolist(),
        "running_var": module.running_var.tolist(),
        "num_batches_tracked": tracked,
    }
    module64 = copy.deepcopy(module).double()
    r32 = run(module, x, dy, v)
    r64 = run(module64, x.double(), dy.double(), v)
    assert module.num_batches_tracked.item() == module64.num_batches_tracked.item()
    expected, errors = {}, {}
    for key, t64 in r64.items():
        if t64 is None:
            expected[key] = errors[key] = None
            continue
        expected[key] = memory_order(t64, layout) if t64.dim() == len(shape) else t64.detach().reshape(-1).tolist()
        errors[key] = (r32[key].detach().double() - t64.detach()).abs().max().item()
    expected["num_batches_tracked"] = module64.num_batches_tracked.item()
    data = {
        "name": name, "description": description, "torch_version": torch.__version__, "layout": layout, "shape": list(shape),
        "virtual_batch_size": v, "chunks": len(x.split(v, dim=0)), "eps": eps, "momentum": momentum, "affine": affine,
        "inputs": inputs, "expected_f64": expected, "torch_f32_max_abs_err": errors,
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))


os.makedirs(OUT, exist_ok=True)
case("nchw_v2_even", "NCHW [8, 3, 4, 5], v = 2: four equal chunks", "NCHW", [8, 3, 4, 5], 2)
case("nchw_v3_rest", "NCHW [7, 4, 3, 3], v = 3: chunks of 3, 3 and 1 image", "NCHW", [7, 4, 3, 3], 3)
case("nchw_v1", "NCHW [3, 5, 2, 3], v = 1: one image per chunk", "NCHW", [3, 5, 2, 3], 1, momentum=0.3)
case("nhwc_v3_rest", "NHWC [7, 3, 4, 2] (channels_last), v = 3: chunks of 3, 3 and 1", "NHWC", [7, 3, 4, 2], 3)
case("nhwc_v4_mNone_tracked5", "NHWC [9, 6, 2, 3], v = 4, momentum None from num_batches_tracked 5", "NHWC", [9, 6, 2, 3], 4, momentum=None, tracked=5)
case("nc_v4_rest", "NC [10, 5], v = 4: chunks of 4, 4 and 2 rows", "NC", [10, 5], 4)
case("nc_v_above_n", "NC [6, 3], v = 16 >= N: one chunk, plain BN", "NC", [6, 3], 16)
case("nc_offset_1e4_v5", "NC [12, 4], values 1e4 + N(0, 1), v = 5", "NC", [12, 4], 5, offset=1e4)
case("ncl_v2_noaffine_eps1e-3", "NCL [5, 2, 7], v = 2, affine False, eps 1e-3", "NCL", [5, 2, 7], 2, affine=False, eps=1e-3)
case("ncdhw_v2_mNone", "NCDHW [5, 2, 2, 3, 2], v = 2, momentum None from num_batches_tracked 0", "NCDHW", [5, 2, 2, 3, 2], 2, momentum=None)
