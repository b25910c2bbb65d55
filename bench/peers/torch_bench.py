#!/usr/bin/env python3
"""PyTorch's CPU batch norm for `npm run bench:peers`, driven by bench/peers/run.mjs.

Usage: torch_bench.py [threads]   (torch.set_num_threads(threads), default 1; interop threads stay 1)

One JSON request per line on stdin, one JSON reply per line on stdout:
  {"cmd": "setup", "op": "train"|"infer"|"backward", "shape": [...], "layout": "channels-first"|"channels-last",
   "inputs": {"x": path, "dy": path, "weight": path, ...}, "outputs": dir}
      builds the tensors (channels-last data becomes an NCHW tensor in torch.channels_last memory format),
      runs the op once and writes its outputs (float32, in the caller's memory order) to files in `outputs`;
      replies {"ok": true, "outputs": {"y": path, ...}}
  {"cmd": "time", "time": ms, "iterations": n, "warmupTime": ms, "warmupIterations": n}
      times the op set up last like tinybench does (warmup, then samples until both the time budget and
      the iteration count are reached); replies {"ok": true, "samples": [ms, ...]}
  {"cmd": "quit"}
The check against the reference happens in JavaScript between "setup" and "time": a wrong answer is never timed.

Operations (on `threads` intra-op threads):
  train     torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.1, eps=1e-5)
  infer     the same with training=False
  backward  torch.autograd.grad of that training-mode call w.r.t. (x, weight, bias) given dy, with the forward
            run once at setup (retain_graph=True): the backward of F.batch_norm alone
Tensors stay in torch between calls: no conversion from or to JavaScript arrays is timed.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass

EPS = 1e-5
MOMENTUM = 0.1
state = {}


def load(path, shape=None):
    a = np.fromfile(path, dtype=np.float32)
    return torch.from_numpy(a if shape is None else a.reshape(shape))


def to_torch(path, shape, layout):
    """The caller's memory order -> a torch tensor in NCHW logical order (channels_last strides for NHWC)."""
    t = load(path, shape)
    if layout == "channels-last" and len(shape) > 2:
        dims = len(shape)
        t = t.permute(0, dims - 1, *range(1, dims - 1))  # [N, ...spatial, C] -> [N, C, ...spatial], no copy
    return t


def from_torch(t, layout):
    """A torch tensor in NCHW logical order -> a contiguous array in the caller's memory order."""
    t = t.detach()
    if layout == "channels-last" and t.dim() > 2:
        t = t.permute(0, *range(2, t.dim()), 1)
    return t.contiguous().numpy().astype(np.float32, copy=False)


def setup(req):
    op, shape, layout, paths = req["op"], req["shape"], req["layout"], req["inputs"]
    c = shape[-1] if layout == "channels-last" else shape[1]
    x = to_torch(paths["x"], shape, layout)
    weight, bias = load(paths["weight"]), load(paths["bias"])
    out = {}
    if op in ("train", "infer"):
        rm, rv = load(paths["runningMean"]).clone(), load(paths["runningVar"]).clone()
        training = op == "train"

        def run():
            return F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=MOMENTUM, eps=EPS)

        y = run()
        out["y"] = from_torch(y, layout)
        if training:
            out["runningMean"] = rm.numpy().copy()
            out["runningVar"] = rv.numpy().copy()
    elif op == "backward":
        rm, rv = torch.zeros(c), torch.ones(c)
        xg = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
        wg = weight.clone().requires_grad_(True)
        bg = bias.clone().requires_grad_(True)
        dy = to_torch(paths["dy"], shape, layout)
        y = F.batch_norm(xg, rm, rv, wg, bg, training=True, momentum=MOMENTUM, eps=EPS)

        def run():
            return torch.autograd.grad(y, (xg, wg, bg), dy, retain_graph=True)

        dx, dw, db = run()
        out["dx"] = from_torch(dx, layout)
        out["dweight"] = dw.detach().numpy().copy()
        out["dbias"] = db.detach().numpy().copy()
    else:
        raise ValueError(f"unknown op {op}")
    state["run"] = run
    files = {}
    for name, a in out.items():
        path = os.path.join(req["outputs"], f"torch{torch.get_num_threads()}-out-{name}.tmp")
        np.ascontiguousarray(a, dtype=np.float32).tofile(path)
        files[name] = path
    return {"ok": True, "outputs": files, "memoryFormat": "channels_last" if x.dim() > 2 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else "contiguous"}


def timed(req):
    run = state["run"]
    now = time.perf_counter
    start, n = now(), 0
    while req.get("warmup", True) and (n < req["warmupIterations"] or (now() - start) * 1000 < req["warmupTime"]):
        run()
        n += 1
    samples, total = [], 0.0
    while len(samples) < req["iterations"] or total < req["time"]:
        t0 = now()
        run()
        dt = (now() - t0) * 1000
        samples.append(dt)
        total += dt
    return {"ok": True, "samples": samples}


def main():
    print(json.dumps({"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads(), "numpy": np.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "setup":
                reply = setup(req)
            elif req["cmd"] == "time":
                reply = timed(req)
            elif req["cmd"] == "quit":
                break
            else:
                reply = {"ok": False, "error": f"unknown command {req['cmd']}"}
        except Exception as e:  # reported to JavaScript, which records the task as failed
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
