#!/usr/bin/python3
"""GPU rows for bench/RESULTS.md from one run of scripts/gpu/check.sh.

  bench/gpu_table.py DIR     (DIR holds voxprint-fp32.json, voxprint-tf32.json,
                              pytorch-gpu.json and machine.log)

Prints markdown: voxprint (voxprint-gpu-bench) against the PyTorch reference
(pytorch_reference.py gpu) on the same GPU in the same run, with ratios
(> 1: voxprint faster).
"""
import json
import os
import sys


def load(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with open(path) as f:
        return json.load(f)


def rtf(entry, key):
    return entry[key]["median_s"] / entry["audio_s"]


def rate(count, timing):
    return count / timing["median_s"]


def ratio(ours, theirs, higher_is_better):
    if not ours or not theirs:
        return "—"
    return f"{(ours / theirs if higher_is_better else theirs / ours):.2f}×"


def main():
    directory = sys.argv[1]
    ours = load(directory, "voxprint-fp32.json")
    tf32 = load(directory, "voxprint-tf32.json")
    torch = load(directory, "pytorch-gpu.json")
    if ours is None or torch is None:
        sys.exit("gpu_table.py: voxprint-fp32.json or pytorch-gpu.json is "
                 "missing or empty")
    rows = []

    def row(what, mine, peer, higher, fmt, mine_tf32=None, peer_tf32=None):
        cells = [what, fmt(mine) if mine else "—", fmt(peer) if peer else "—",
                 ratio(mine, peer, higher)]
        cells += [fmt(mine_tf32) if mine_tf32 else "—",
                  fmt(peer_tf32) if peer_tf32 else "—"]
        rows.append("| " + " | ".join(cells) + " |")

    def rtf_fmt(x):
        return f"RTF {x:.2e}"

    row("whole 30 s, one file, end to end", rtf(ours["whole_30s"], "end_to_end"),
        rtf(torch["whole_30s"], "end_to_end"), False, rtf_fmt,
        tf32 and rtf(tf32["whole_30s"], "end_to_end"))
    row("whole 30 s, one file, network alone",
        rtf(ours["whole_30s"], "network"), rtf(torch["whole_30s"], "network"),
        False, rtf_fmt, tf32 and rtf(tf32["whole_30s"], "network"),
        rtf(torch["tf32"]["whole_30s"], "network"))
    def by_size(table):
        return sorted(table.items(), key=lambda item: int(item[0]))

    for batch, entry in by_size(ours["whole_batched"]):
        peer = torch["whole_batched"].get(batch)
        row(f"{batch} × 30 s files in one batch, network alone",
            rtf(entry, "network"), peer and rtf(peer, "network"), False,
            rtf_fmt, tf32 and rtf(tf32["whole_batched"][batch], "network"))
    many, peer_many = ours.get("many_files"), torch.get("many_files")
    if many and peer_many:
        files = many["files"]
        row(f"{files} files of 2–4 s, files/s (voxprint batched by length; "
            "PyTorch one by one, as pyannote)",
            rate(files, many["batched"]), rate(files, peer_many["one_by_one"]),
            True, lambda x: f"{x:.0f}",
            tf32 and rate(files, tf32["many_files"]["batched"]))
        row(f"{files} files of 2–4 s, files/s, both one by one",
            rate(files, many["one_by_one"]),
            rate(files, peer_many["one_by_one"]), True, lambda x: f"{x:.0f}")
    best_peer = max(rate(e["windows"], e["end_to_end"])
                    for e in torch["sliding_3s_1s"].values())
    for batch, entry in by_size(ours["sliding_3s_1s"]):
        peer = torch["sliding_3s_1s"].get(batch)
        peer_tf32 = torch["tf32"]["sliding_3s_1s"].get(batch)
        row(f"sliding 3 s / 1 s, batches of {batch}, windows/s end to end",
            rate(entry["windows"], entry["end_to_end"]),
            peer and rate(peer["windows"], peer["end_to_end"]), True,
            lambda x: f"{x:.0f}",
            tf32 and rate(tf32["sliding_3s_1s"][batch]["windows"],
                          tf32["sliding_3s_1s"][batch]["end_to_end"]),
            peer_tf32 and peer and rate(peer["windows"],
                                        peer_tf32["end_to_end"]))
    best_ours = max(rate(e["windows"], e["end_to_end"])
                    for e in ours["sliding_3s_1s"].values())
    row("sliding 3 s / 1 s, best batch of each, windows/s", best_ours,
        best_peer, True, lambda x: f"{x:.0f}")
    row("model load to ready on the GPU, s", ours["model_load_s"],
        torch["model_load_s"], False, lambda x: f"{x:.3f}",
        tf32 and tf32["model_load_s"])

    print(f"GPU: {ours['device']}; PyTorch peer: {torch['version']} on "
          f"{torch['device']}; host threads {ours.get('host_threads')}.\n")
    print("| measurement | voxprint fp32 | PyTorch fp32 (TF32 off, as "
          "pyannote) | voxprint vs PyTorch | voxprint tf32 | PyTorch TF32 |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print()
    accuracy = [("voxprint fp32", ours), ("voxprint tf32", tf32),
                ("PyTorch fp32", torch)]
    print("| accuracy against the kit (sample.wav), relative L2 | fbank | "
          "whole | sliding 3 s / 1 s |")
    print("| --- | --- | --- | --- |")
    for name, data in accuracy:
        if data:
            a = data["accuracy"]
            print(f"| {name} | {a['fbank_rel_l2']:.2e} | "
                  f"{a['whole_rel_l2']:.2e} | {a['sliding_3_1_rel_l2']:.2e} |")
    print(f"| PyTorch TF32 (its default) | | "
          f"{torch['tf32']['whole_rel_l2']:.2e} | |")


if __name__ == "__main__":
    main()
