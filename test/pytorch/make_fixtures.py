"""Reference data from PyTorch for test/json.test.ts and test/module-semantics.test.ts.

Run from this folder with a Python that has torch (Debian's python3-torch, 1.13):
    python3 make_fixtures.py
It writes bn_layers.json, exactly what the README's "Saving and loading" snippet writes for a small
trained model, bn_layers_eval.json (an input per layer and PyTorch's eval output for it, float32 and
float64) and module_semantics.json (torch.nn.BatchNorm*d behaviour the module must match).
The tests only read the JSON; they never need torch.
"""
import json

import torch

torch.manual_seed(7)


def f32_list(t):
    return t.detach().to(torch.float32).flatten().tolist()


# --- a small trained model whose BN layers are dumped as the README shows ---
model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
    torch.nn.Conv2d(4, 5, 1), torch.nn.BatchNorm2d(5, momentum=None), torch.nn.ReLU(),
)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(6):
    x = torch.randn(8, 3, 6, 6) * 2 + 1
    loss = (model(x) - 0.5).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()

# the README snippet, verbatim
layers = {name: {key: value.tolist() for key, value in module.state_dict().items()}
          for name, module in model.named_modules()
          if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)}
with open("bn_layers.json", "w") as f:
    json.dump(layers, f)

evals = {}
for name, module in model.named_modules():
    if not isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        continue
    x = (torch.randn(2, module.num_features, 3, 3) * 3 + 2).to(torch.float32)
    y32 = module(x)
    m64 = type(module)(module.num_features, eps=module.eps, momentum=module.momentum).double().eval()
    m64.load_state_dict(module.state_dict())
    y64 = m64(x.double())
    evals[name] = {"shape": list(x.shape), "x": f32_list(x), "y_f64": y64.flatten().tolist(),
                   "torch_f32_max_abs_err": (y32.double() - y64).abs().max().item()}
with open("bn_layers_eval.json", "w") as f:
    json.dump(evals, f)

# --- module semantics (float64 modules on float32-valued inputs) ---
cases = {}


def rand(*shape, scale=1.0, offset=0.0):
    return (torch.randn(*shape) * scale + offset).to(torch.float32).double()


# 1. an empty training batch is counted, so a following momentum=None step averages over 2 batches
bn = torch.nn.BatchNorm1d(3, momentum=None).double()
x1 = rand(6, 3, 4, scale=2, offset=1)
bn(torch.zeros(0, 3, 4, dtype=torch.float64))
after_empty = int(bn.num_batches_tracked)
bn(x1)
cases["empty_batch_counts"] = {"shape": [6, 3, 4], "x": f32_list(x1), "after_empty": after_empty,
                               "num_batches_tracked": int(bn.num_batches_tracked),
                               "running_mean": bn.running_mean.tolist(), "running_var": bn.running_var.tolist()}

# 2. track_running_stats switched off after construction: buffers kept, not updated or counted, used in eval
bn = torch.nn.BatchNorm2d(2).double()
xa, xb, xc = rand(3, 2, 2, 2, scale=2, offset=1), rand(3, 2, 2, 2, offset=-2), rand(3, 2, 2, 2, scale=3)
bn(xa)
bn.track_running_stats = False
yb = bn(xb)
bn.eval()
yc = bn(xc)
cases["tracking_switched_off"] = {"shape": [3, 2, 2, 2], "xa": f32_list(xa), "xb": f32_list(xb), "xc": f32_list(xc),
                                  "yb": yb.flatten().tolist(), "yc": yc.flatten().tolist(),
                                  "running_mean": bn.running_mean.tolist(), "running_var": bn.running_var.tolist(),
                                  "num_batches_tracked": int(bn.num_batches_tracked),
                                  "state_dict_keys": list(bn.state_dict().keys())}

# 3. gradients accumulate across backward calls until zero_grad(), which sets them to None (the
#    default since PyTorch 2.0; 1.13 needs set_to_none=True)
bn = torch.nn.BatchNorm2d(3).double()
with torch.no_grad():
    bn.weight.copy_(torch.tensor([0.5, 1.5, -1.0]))
    bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
x = rand(2, 3, 2, 2, scale=2, offset=1)
dy1, dy2, dy3 = rand(2, 3, 2, 2), rand(2, 3, 2, 2, offset=0.5), rand(2, 3, 2, 2, scale=2)
bn(x).backward(dy1)
bn(x).backward(dy2)
accumulated = (bn.weight.grad.tolist(), bn.bias.grad.tolist())
bn.zero_grad(set_to_none=True)
none_after_zero = bn.weight.grad is None
bn(x).backward(dy3)
cases["grad_accumulation"] = {"shape": [2, 3, 2, 2], "weight": bn.weight.tolist(), "bias": bn.bias.tolist(),
                              "x": f32_list(x), "dy1": f32_list(dy1), "dy2": f32_list(dy2), "dy3": f32_list(dy3),
                              "weight_grad_12": accumulated[0], "bias_grad_12": accumulated[1],
                              "none_after_zero_grad": none_after_zero,
                              "weight_grad_3": bn.weight.grad.tolist(), "bias_grad_3": bn.bias.grad.tolist()}

# 4. a state dict without num_batches_tracked (and without version metadata) loads with the counter at 0
bn = torch.nn.BatchNorm1d(2)
bn.num_batches_tracked.fill_(7)
sd = {k: v for k, v in torch.nn.BatchNorm1d(2).state_dict().items() if k != "num_batches_tracked"}
bn.load_state_dict(sd)
cases["load_without_counter"] = {"num_batches_tracked": int(bn.num_batches_tracked)}

cases["torch_version"] = torch.__version__
with open("module_semantics.json", "w") as f:
    json.dump(cases, f)
