#!/usr/bin/python3
"""How far bf16 in each part of the network moves the embedding: the error
side of a mixed-precision mode, measurable on any CPU.

  /usr/bin/python3 bench/bf16_error_by_stage.py [--kit DIR] [--audio FILE]

voxprint's `--precision bf16` (oneDNN) folds BatchNorm into the convolutions,
rounds their weights and input activations to bf16, accumulates in fp32 and
stores each output (after the residual sum and ReLU) in bf16; the pooling and
the last linear layer stay fp32. This script does the same rounding in float64
with torch, for chosen parts only (the stem and stages 1 to 4), and prints the
relative L2 distance of the whole-file embedding from the exact one. With
every part in bf16 it gives what voxprint's bf16 mode measures (4.4e-2 on the
kit's sample.wav), which checks the emulation; stages 3-4 in bf16 is what
`--precision mixed` runs. The speed of such modes can only be measured on a
CPU with AMX, where bf16 convolutions are fast.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "peers"))
import pytorch_reference  # noqa: E402  (the checkpoint reader, the fbank)

STEM = 0  # the first convolution; stages are 1..4
PLANS = [
    ("every part in bf16 (voxprint's --precision bf16)", {0, 1, 2, 3, 4}),
    ("stem in fp32", {1, 2, 3, 4}),
    ("stem and stage 1 in fp32", {2, 3, 4}),
    ("stage 4 in fp32", {0, 1, 2, 3}),
    ("stages 2-3 in bf16", {2, 3}),
    ("stages 3-4 in bf16", {3, 4}),
    ("stage 4 in bf16", {4}),
]


def to_bf16(tensor):
    return tensor.to(torch.bfloat16).double()


class RoundedResNet34:
    """pytorch_reference.ResNet34 with BatchNorm folded and, in the parts
    given, bf16 weights, inputs and outputs (fp32-or-better accumulation)."""

    def __init__(self, weights):
        self.w = {name: value.double() if value.is_floating_point() else value
                  for name, value in weights.items()}

    def _conv(self, x, conv, bn, stride, padding, bf16, residual=None,
              relu=True):
        w = self.w
        scale = w[bn + ".weight"] / torch.sqrt(w[bn + ".running_var"] + 1e-5)
        weight = w[conv] * scale[:, None, None, None]
        bias = w[bn + ".bias"] - w[bn + ".running_mean"] * scale
        if bf16:
            x, weight = to_bf16(x), to_bf16(weight)
        y = F.conv2d(x, weight, bias, stride=stride, padding=padding)
        if residual is not None:
            y = y + residual
        if relu:
            y = F.relu(y)
        return to_bf16(y) if bf16 else y

    @torch.no_grad()
    def __call__(self, feats, bf16_parts):
        w = self.w
        x = feats.permute(0, 2, 1).unsqueeze(1)
        x = self._conv(x, "conv1.weight", "bn1", 1, 1, STEM in bf16_parts)
        for stage, blocks, stride in pytorch_reference.ResNet34.STAGES:
            bf16 = stage in bf16_parts
            for b in range(blocks):
                name = f"layer{stage}.{b}"
                step = stride if b == 0 else 1
                out = self._conv(x, name + ".conv1.weight", name + ".bn1",
                                 step, 1, bf16)
                shortcut = x
                if name + ".shortcut.0.weight" in w:
                    shortcut = self._conv(x, name + ".shortcut.0.weight",
                                          name + ".shortcut.1", step, 0, bf16,
                                          relu=False)
                x = self._conv(out, name + ".conv2.weight", name + ".bn2", 1,
                               1, bf16, residual=shortcut)
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        stats = torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], 1)
        return F.linear(stats, w["seg_1.weight"], w["seg_1.bias"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--kit", default=os.path.join(here, "..", "..",
                                                      "shared", "reference"))
    parser.add_argument("--audio", help="default: the kit's sample.wav")
    args = parser.parse_args()
    audio = args.audio or os.path.join(args.kit, "audio", "sample.wav")
    net = RoundedResNet34(pytorch_reference.load_state_dict(
        os.path.join(args.kit, "models", "pytorch_model.bin")))
    feats = pytorch_reference.fbank(
        pytorch_reference.load_audio(audio)[None]).double()
    exact = net(feats, set())
    print(f"relative L2 from the exact embedding, {os.path.basename(audio)}:")
    for label, parts in PLANS:
        error = (torch.linalg.norm(net(feats, parts) - exact) /
                 torch.linalg.norm(exact)).item()
        print(f"  {error:.2e}  {label}")


if __name__ == "__main__":
    main()
