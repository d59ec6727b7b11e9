#!/usr/bin/python3
"""Writes the tiny stub models of tests/data (run with /usr/bin/python3).

They are WeSpeaker-shaped ResNets with a few channels, random weights and
random BatchNorm statistics, saved in the three published formats, plus
deliberately broken variants for the robustness tests. Each file is a few
tens of KB. The script is deterministic (fixed seed) but torch's zip and ONNX
writers are not byte-stable across versions: regenerate all files together.

Usage: /usr/bin/python3 tests/support/make_stub_models.py [tests/data]
"""
import collections
import enum
import os
import struct
import sys
import types

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "data")


# --- a WeSpeaker-style ResNet (names follow wespeaker/models/resnet.py) -----
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * 4:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes * 4, 1, stride, bias=False),
                nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, blocks, channels, embed_dim, feat_dim=80,
                 stem_kernel=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, stem_kernel, 1, stem_kernel // 2,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        in_planes = channels
        for i, count in enumerate(blocks):
            layers = []
            for b in range(count):
                stride = 2 if i > 0 and b == 0 else 1
                layers.append(block(in_planes, channels << i, stride))
                in_planes = (channels << i) * block.expansion
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layers))
        rows = feat_dim // 8
        self.seg_1 = nn.Linear(2 * in_planes * rows, embed_dim)

    def forward(self, feats):
        x = feats.permute(0, 2, 1).unsqueeze(1)
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(4):
            x = getattr(self, "layer%d" % (i + 1))(x)
        mean = x.mean(dim=-1)
        std = torch.sqrt(torch.var(x, dim=-1) + 1e-7)
        stats = torch.cat((mean.flatten(start_dim=1), std.flatten(start_dim=1)),
                          dim=1)
        return self.seg_1(stats)


class WithMeanVec(nn.Module):
    """WeSpeaker's export wrapper: subtracts the training-set mean."""

    def __init__(self, model, embed_dim):
        super().__init__()
        self.model = model
        self.register_buffer("mean_vec", torch.randn(embed_dim) * 0.1)

    def forward(self, feats):
        return self.model(feats) - self.mean_vec


def randomize(model):
    # BatchNorm statistics on a 1/64 grid are exact in float16 and bfloat16,
    # so the mixed-dtype stub folds to exactly the same weights.
    def grid(x):
        return torch.round(x * 64) / 64

    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.weight.data = grid(torch.rand(c) + 0.5)
            module.bias.data = grid(torch.randn(c) * 0.1)
            module.running_mean = grid(torch.randn(c) * 0.2)
            module.running_var = grid(torch.rand(c) + 0.3)
            module.num_batches_tracked = torch.tensor(7)
    return model.eval()


def folded(model):
    """Folded weights in ResNetWeights order, in float64 -> float32."""
    out = []

    def fold(conv, bn):
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + 1e-5)
        w = conv.weight.double() * scale.view(-1, 1, 1, 1)
        b = bn.bias.double() - bn.running_mean.double() * scale
        out.extend([w.float().flatten(), b.float().flatten()])

    fold(model.conv1, model.bn1)
    for i in range(4):
        for block in getattr(model, "layer%d" % (i + 1)):
            n = 3 if isinstance(block, Bottleneck) else 2
            for c in range(1, n + 1):
                fold(getattr(block, "conv%d" % c), getattr(block, "bn%d" % c))
            if len(block.shortcut) > 0:
                fold(block.shortcut[0], block.shortcut[1])
    out.extend([model.seg_1.weight.detach().flatten(),
                model.seg_1.bias.detach().flatten()])
    return torch.cat(out).detach().numpy().astype(np.float32)


def path(name):
    return os.path.join(OUT, name)


def export_onnx(model, name, embed_dim, mean_vec=True):
    wrapped = WithMeanVec(model, embed_dim).eval() if mean_vec else model
    torch.onnx.export(wrapped, (torch.randn(1, 200, 80),), path(name),
                      opset_version=14, input_names=["feats"],
                      output_names=["embs"], do_constant_folding=True,
                      dynamic_axes={"feats": {0: "B", 1: "T"},
                                    "embs": {0: "B"}})
    return wrapped


# --- pyannote's classes, faked so that the pickle references them ---------
def fake_pyannote_module():
    task = types.ModuleType("pyannote.audio.core.task")

    class Problem(enum.Enum):
        REPRESENTATION = 3

    class Resolution(enum.Enum):
        CHUNK = 2

    class Specifications:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    for cls in (Problem, Resolution, Specifications):
        cls.__module__ = task.__name__
        cls.__qualname__ = cls.__name__
        setattr(task, cls.__name__, cls)
    for name in ("pyannote", "pyannote.audio", "pyannote.audio.core"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules[task.__name__] = task
    return task


# --- minimal protobuf wire editing (no onnx python package here) ----------
def read_varint(buf, pos):
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def parse(buf):
    fields, pos = [], 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise ValueError("wire type %d" % wire)
        fields.append([number, wire, value])
    return fields


def serialize(fields):
    out = bytearray()
    for number, wire, value in fields:
        out += varint(number << 3 | wire)
        if wire == 0:
            out += varint(value)
        elif wire == 2:
            out += varint(len(value)) + value
        else:
            out += value
    return bytes(out)


def string_field(fields, number):
    for n, w, v in fields:
        if n == number and w == 2:
            return v.decode()
    return None


def edit_graph(name, out_name, edit):
    with open(path(name), "rb") as f:
        model = parse(f.read())
    for field in model:
        if field[0] == 7:  # ModelProto.graph
            graph = parse(field[2])
            edit(graph)
            field[2] = serialize(graph)
    with open(path(out_name), "wb") as f:
        f.write(serialize(model))


def conv_nodes(graph):
    # GraphProto.node = 1; NodeProto.op_type = 4
    return [f for f in graph if f[0] == 1 and
            string_field(parse(f[2]), 4) == "Conv"]


def set_first_conv_kernel(graph):
    node_field = conv_nodes(graph)[0]
    node = parse(node_field[2])
    for attr_field in node:
        if attr_field[0] != 5:  # NodeProto.attribute
            continue
        attr = parse(attr_field[2])
        if string_field(attr, 1) == "kernel_shape":
            attr = [a for a in attr if a[0] != 8] + [[8, 0, 5], [8, 0, 5]]
            attr_field[2] = serialize(attr)
    node_field[2] = serialize(node)


def drop_second_conv_weight(graph):
    node = parse(conv_nodes(graph)[1][2])
    weight = [v.decode() for n, w, v in node if n == 1][1]  # NodeProto.input
    graph[:] = [f for f in graph
                if not (f[0] == 5 and string_field(parse(f[2]), 8) == weight)]


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240501)
    fake_pyannote_module()
    task = sys.modules["pyannote.audio.core.task"]

    # Basic-block stub: 2 channels, blocks {1,2,1,1}, 8-dim embedding.
    basic = randomize(ResNet(BasicBlock, [1, 2, 1, 1], 2, 8))
    state = basic.state_dict()
    np.save(path("stub-basic.folded.npy"), folded(basic))

    pyannote = {
        "state_dict": collections.OrderedDict(
            ("resnet." + k, v) for k, v in state.items()),
        "pyannote.audio": {
            "versions": {"torch": "1.13", "pyannote.audio": "3.1.0"},
            "architecture": {
                "module": "pyannote.audio.models.embedding.wespeaker",
                "class": "WeSpeakerResNet34"},
            "specifications": task.Specifications(
                problem=task.Problem.REPRESENTATION,
                resolution=task.Resolution.CHUNK, duration=5.0),
        },
        "pytorch-lightning_version": "2.1.0",
    }
    torch.save(pyannote, path("stub-basic-pyannote.bin"))
    wespeaker = collections.OrderedDict(state)
    wespeaker["projection.weight"] = torch.randn(10, 8)
    torch.save(wespeaker, path("stub-basic-wespeaker.pt"))
    wrapped = export_onnx(basic, "stub-basic.onnx", 8)
    np.save(path("stub-basic.mean-vec.npy"),
            wrapped.mean_vec.numpy().astype(np.float32))

    # The same weights in other dtypes and non-contiguous layouts.
    mixed = collections.OrderedDict(state)
    mixed["conv1.weight"] = state["conv1.weight"].double()
    mixed["seg_1.bias"] = state["seg_1.bias"].double()
    for key in ("bn1.weight", "bn1.bias", "bn1.running_mean",
                "bn1.running_var"):
        mixed[key] = state[key].half()
        mixed["layer1.0." + key] = state["layer1.0." + key].bfloat16()
    seg = state["seg_1.weight"]
    mixed["seg_1.weight"] = seg.t().contiguous().t()  # column-major view
    conv = state["layer2.0.conv1.weight"]
    mixed["layer2.0.conv1.weight"] = (
        conv.permute(2, 3, 1, 0).contiguous().permute(3, 2, 0, 1))
    assert not mixed["seg_1.weight"].is_contiguous()
    assert not mixed["layer2.0.conv1.weight"].is_contiguous()
    torch.save(mixed, path("stub-basic-mixed.pt"))

    # Broken variants.
    wrong = collections.OrderedDict(state)
    wrong["layer2.0.conv2.weight"] = torch.randn(4, 4, 1, 1)
    torch.save(wrong, path("stub-wrong-shape.pt"))
    integer = collections.OrderedDict(state)
    integer["layer1.0.conv1.weight"] = torch.zeros(2, 2, 3, 3,
                                                   dtype=torch.int64)
    torch.save(integer, path("stub-int-weight.pt"))
    edit_graph("stub-basic.onnx", "stub-wrong-kernel.onnx",
               set_first_conv_kernel)
    edit_graph("stub-basic.onnx", "stub-missing-initializer.onnx",
               drop_second_conv_weight)
    stem5 = randomize(ResNet(BasicBlock, [1, 2, 1, 1], 2, 8, stem_kernel=5))
    export_onnx(stem5, "stub-stem-5x5.onnx", 8, mean_vec=False)

    # Bottleneck stub: 1 channel, blocks {1,1,1,1}, 4-dim embedding.
    bottleneck = randomize(ResNet(Bottleneck, [1, 1, 1, 1], 1, 4))
    np.save(path("stub-bottleneck.folded.npy"), folded(bottleneck))
    torch.save(bottleneck.state_dict(), path("stub-bottleneck.pt"))
    export_onnx(bottleneck, "stub-bottleneck.onnx", 4, mean_vec=False)

    for name in sorted(os.listdir(OUT)):
        if name.startswith("stub-"):
            print("%8d %s" % (os.path.getsize(path(name)), name))


if __name__ == "__main__":
    main()
