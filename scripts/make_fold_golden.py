# Reference data for foldBatchNorm, computed by PyTorch (Debian's python3-torch, CPU, one thread):
# torch.nn.utils.fusion.fuse_conv_bn_eval / fuse_linear_bn_weights on float32 modules (what users of torch
# get) and on float64 copies of the same float32 parameters (the exact answer), and the fused module's
# output on a random input next to the unfused layer -> BN in eval mode, in float64.
# Writes test/golden-fold/<name>.json. Run by hand: /usr/bin/python3 scripts/make_fold_golden.py
#
# Format (all tensors flattened in PyTorch's row-major order, float32 values as exact decimals):
#   layer (its repr; stride 1, no padding), transposed, groups, shape (weight shape), x_shape, eps,
#   affine, conv_bias
#   inputs: weight, bias (null without a conv bias), bn (the BN's state_dict: weight and bias only when
#           affine, running_mean, running_var, num_batches_tracked), x
#   expected:     weight, bias, y   torch's float32 fusion and the fused float32 module's output
#   expected_f64: weight, bias, y   the fusion in float64, and layer -> BN (eval) in float64
#   torch_f32_max_abs_err: weight, bias, y   max |expected - expected_f64|
import copy, json, os
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_weights

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "test", "golden-fold")
BN = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


def flat(t):
    return t.detach().reshape(-1).tolist()


def fuse(layer, bn, transposed):
    if not isinstance(layer, nn.Linear):
        return fuse_conv_bn_eval(layer, bn, transpose=transposed)
    # torch 1.13's fuse_linear_bn_weights has no defaults for a BN without affine (later versions use
    # ones and zeros, as fuse_conv_bn_weights does here): give them
    fused = copy.deepcopy(layer)
    w = bn.weight if bn.weight is not None else torch.ones_like(bn.running_mean)
    b = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    fused.weight, fused.bias = fuse_linear_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, w, b)
    return fused


def case(name, description, layer, x_shape, affine=True, eps=1e-5, stats=None):
    transposed = isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    w = layer.weight
    c = w.shape[1] if transposed else w.shape[0]
    bn = BN[len(x_shape)](c, eps=eps, affine=affine)
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    with torch.no_grad():
        layer.weight.copy_(torch.randn(w.shape, generator=g) * 0.5)
        if layer.bias is not None:
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
        if affine:
            bn.weight.copy_(torch.randn(c, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(c, generator=g))
        mean, var = stats(g, c) if stats else (torch.randn(c, generator=g) * 2, torch.rand(c, generator=g) * 3 + 0.05)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.fill_(17)
    layer.eval()
    bn.eval()
    x = torch.randn(x_shape, generator=g)

    fused32 = fuse(layer, bn, transposed)
    layer64, bn64 = copy.deepcopy(layer).double(), copy.deepcopy(bn).double()
    fused64 = fuse(layer64, bn64, transposed)
    with torch.no_grad():
        y32 = fused32(x)
        y64 = bn64(layer64(x.double()))
    err = lambda a, b: (a.double() - b).abs().max().item()
    data = {
        "name": name, "description": description, "torch_version": torch.__version__, "layer": repr(layer),
        "transposed": transposed, "groups": getattr(layer, "groups", 1), "shape": list(w.shape), "x_shape": list(x_shape), "eps": eps, "affine": affine,
        "conv_bias": layer.bias is not None,
        "inputs": {
            "weight": flat(layer.weight),
            "bias": flat(layer.bias) if layer.bias is not None else None,
            "bn": {k: (v.item() if v.dim() == 0 else flat(v)) for k, v in bn.state_dict().items()},
            "x": flat(x),
        },
        "expected": {"weight": flat(fused32.weight), "bias": flat(fused32.bias), "y": flat(y32)},
        "expected_f64": {"weight": flat(fused64.weight), "bias": flat(fused64.bias), "y": flat(y64)},
        "torch_f32_max_abs_err": {
            "weight": err(fused32.weight, fused64.weight), "bias": err(fused32.bias, fused64.bias), "y": err(y32, y64),
        },
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))


def hard_stats(g, c):
    """Means far from zero and variances from 0 (below eps) to 1e4: large scales and cancelling biases."""
    mean = torch.randn(c, generator=g) * 1e3
    var = torch.tensor([0.0, 1e-8, 1e-6, 1e4, 0.5, 3.0, 1e-3][:c] + [1.0] * max(0, c - 7))
    return mean, var


os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)  # the modules' own initialization, overwritten above
case("linear_bias_affine", "Linear(7, 5) -> BatchNorm1d(5)", nn.Linear(7, 5), [3, 7])
case("linear_nobias_noaffine", "Linear without bias -> BatchNorm1d(affine=False)", nn.Linear(6, 4, bias=False), [2, 6], affine=False)
case("linear_one_output", "Linear(5, 1): a single output channel", nn.Linear(5, 1), [4, 5])
case("conv1d_bias_affine", "Conv1d(3, 5, 3)", nn.Conv1d(3, 5, 3), [2, 3, 9])
case("conv1d_k1_nobias_eps1e-3", "Conv1d(4, 3, 1) without bias, BN eps 1e-3", nn.Conv1d(4, 3, 1, bias=False), [2, 4, 5], eps=1e-3)
case("conv2d_bias_affine", "Conv2d(3, 6, (3, 2))", nn.Conv2d(3, 6, (3, 2)), [2, 3, 7, 5])
case("conv2d_nobias_affine_eps1e-3", "Conv2d(5, 7, 3) without bias, BN eps 1e-3", nn.Conv2d(5, 7, 3, bias=False), [1, 5, 6, 7], eps=1e-3)
case("conv2d_bias_noaffine", "Conv2d(2, 3, 1) -> BatchNorm2d(affine=False)", nn.Conv2d(2, 3, 1), [3, 2, 4, 3], affine=False)
case("conv2d_groups2", "Conv2d(4, 6, 3, groups=2): weight [6, 2, 3, 3]", nn.Conv2d(4, 6, 3, groups=2), [2, 4, 5, 5])
case("conv2d_hard_stats", "Conv2d(3, 9, 2), running means ~1e3, running variances 0 to 1e4", nn.Conv2d(3, 9, 2), [2, 3, 4, 4], stats=hard_stats)
case("conv3d_bias_affine", "Conv3d(2, 5, (1, 2, 3))", nn.Conv3d(2, 5, (1, 2, 3)), [2, 2, 3, 4, 5])
case("conv3d_nobias_noaffine_eps1e-3", "Conv3d(3, 4, 2) without bias, BatchNorm3d(affine=False, eps=1e-3)", nn.Conv3d(3, 4, 2, bias=False), [1, 3, 3, 4, 3], affine=False, eps=1e-3)
case("convtranspose1d_bias_affine", "ConvTranspose1d(3, 5, 2): weight [3, 5, 2]", nn.ConvTranspose1d(3, 5, 2), [2, 3, 6])
case("convtranspose2d_bias_affine", "ConvTranspose2d(4, 6, 3): weight [4, 6, 3, 3], BN on axis 1", nn.ConvTranspose2d(4, 6, 3), [2, 4, 3, 5])
case("convtranspose2d_nobias_noaffine", "ConvTranspose2d(5, 3, (2, 3)) without bias, BN affine=False", nn.ConvTranspose2d(5, 3, (2, 3), bias=False), [1, 5, 4, 3], affine=False)
case("convtranspose3d_nobias_affine_eps1e-3", "ConvTranspose3d(2, 3, 2) without bias, BN eps 1e-3", nn.ConvTranspose3d(2, 3, 2, bias=False), [1, 2, 2, 3, 2], eps=1e-3)
