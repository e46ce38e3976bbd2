#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Writes SYNTHETIC ONNX files for the syncdrawsrc tests (never bundled, never trained).

They follow docs/model-format.md in their inputs, outputs and metadata, but their
weights are fixed pseudo-random numbers: they test the element's plumbing (caps,
timestamps, errors), not generation quality. The metadata says so
(syncdraw.dataset = "synthetic-test", syncdraw.training_steps = 0).

Also writes, into OUT_DIR/bad/, models that break the contract in one way each,
for the error tests.

usage: make_test_models.py OUT_DIR [--frames N] [--size H W] [--timesteps T] [--z-dim Z]
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WORDS = ["<pad>", "digit"] + [str(d) for d in range(10)] + [
    "is", "moving", "up", "and", "down", "left", "right", "bouncing", "the", "are"]


def build(path, *, frames, height, width, timesteps, z_dim, caption_length,
          channels=1, meta_overrides=None, drop_meta=(), drop_output=None,
          video_height=None, z_name="z"):
    rng = np.random.default_rng(1234)
    p = frames * channels * height * width
    inits = [
        numpy_helper.from_array((rng.standard_normal((z_dim, p)) * 0.6).astype(np.float32), "W"),
        numpy_helper.from_array(np.array(
            [-1, timesteps, frames, channels, height, width], dtype=np.int64), "shape6"),
        numpy_helper.from_array(np.array(timesteps - 1, dtype=np.int64), "last"),
    ]
    nodes = [helper.make_node("MatMul", [z_name, "W"], ["zw"])]
    inputs = [helper.make_tensor_value_info(z_name, TensorProto.FLOAT, ["batch", timesteps, z_dim])]
    steps = "zw"
    if caption_length > 0:
        emb = (rng.standard_normal((len(WORDS), p)) * 0.3).astype(np.float32)
        emb[0] = 0.0  # the pad id adds nothing
        inits.append(numpy_helper.from_array(emb, "E"))
        inputs.append(helper.make_tensor_value_info("caption", TensorProto.INT64, ["batch", caption_length]))
        nodes += [
            helper.make_node("Gather", ["E", "caption"], ["emb"], axis=0),
            helper.make_node("ReduceSum", ["emb", "axis1"], ["cap"], keepdims=1),
            helper.make_node("Add", ["zw", "cap"], ["zwc"]),
        ]
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
        steps = "zwc"
    inits.append(numpy_helper.from_array(np.array(1, dtype=np.int64), "axis"))
    nodes += [
        helper.make_node("CumSum", [steps, "axis"], ["c"]),
        helper.make_node("Reshape", ["c", "shape6"], ["c6"]),
        helper.make_node("Sigmoid", ["c6"], ["canvases"]),
        helper.make_node("Gather", ["canvases", "last"], ["video"], axis=1),
    ]
    vh = video_height if video_height is not None else height
    outputs = [
        helper.make_tensor_value_info("video", TensorProto.FLOAT, ["batch", frames, channels, vh, width]),
        helper.make_tensor_value_info("canvases", TensorProto.FLOAT,
                                      ["batch", timesteps, frames, channels, height, width]),
    ]
    if drop_output:
        outputs = [o for o in outputs if o.name != drop_output]
    graph = helper.make_graph(nodes, "synthetic", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    vocab = None if caption_length == 0 else {
        "tokens": WORDS, "pad_id": 0, "lowercase": True, "split": "non-alphanumeric"}
    meta = {
        "syncdraw.format_version": "1",
        "syncdraw.frames": str(frames),
        "syncdraw.height": str(height),
        "syncdraw.width": str(width),
        "syncdraw.channels": str(channels),
        "syncdraw.timesteps": str(timesteps),
        "syncdraw.z_dim": str(z_dim),
        "syncdraw.caption_length": str(caption_length),
        "syncdraw.vocabulary": json.dumps(vocab),
        "syncdraw.dataset": "synthetic-test",
        "syncdraw.variant": "syncdraw",
        "syncdraw.example_captions": json.dumps(
            ["digit 3 is moving up and down"] if caption_length else []),
        "syncdraw.training_steps": "0",
        "syncdraw.test_nll": "null",
    }
    meta.update(meta_overrides or {})
    for k in drop_meta:
        meta.pop(k, None)
    helper.set_model_props(model, meta)
    onnx.save(model, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", type=int, nargs=2, default=[32, 32])
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--z-dim", type=int, default=8)
    ap.add_argument("--only-good", action="store_true",
                    help="write only the contract-conforming models")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    dims = dict(frames=a.frames, height=a.size[0], width=a.size[1],
                timesteps=a.timesteps, z_dim=a.z_dim)
    out = lambda n: os.path.join(a.out_dir, n)
    build(out("synth1-caption.onnx"), caption_length=7, **dims)
    build(out("synth2-caption.onnx"), caption_length=15, **dims)
    build(out("synth1-uncond.onnx"), caption_length=0, **dims)
    if a.only_good:
        return
    os.makedirs(os.path.join(a.out_dir, "bad"), exist_ok=True)
    out = lambda n: os.path.join(a.out_dir, "bad", n)
    build(out("bad-version.onnx"), caption_length=7, meta_overrides={"syncdraw.format_version": "2"}, **dims)
    build(out("bad-missing-frames.onnx"), caption_length=7, drop_meta=["syncdraw.frames"], **dims)
    build(out("bad-no-canvases.onnx"), caption_length=7, drop_output="canvases", **dims)
    build(out("bad-video-shape.onnx"), caption_length=7, video_height=a.size[0] + 1, **dims)
    build(out("bad-input-name.onnx"), caption_length=0, z_name="noise", **dims)
    build(out("bad-vocab-null.onnx"), caption_length=7, meta_overrides={"syncdraw.vocabulary": "null"}, **dims)


if __name__ == "__main__":
    main()
