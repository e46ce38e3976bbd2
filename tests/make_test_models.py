#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Writes SYNTHETIC ONNX files for the syncdrawsrc tests (never bundled, never trained).

They follow docs/model-format.md in their inputs, outputs and metadata, but their
weights are fixed pseudo-random numbers: they test the element's plumbing (caps,
timestamps, captions, errors), not generation quality. The metadata says so
(syncdraw.dataset = "synthetic-test", syncdraw.training_steps = 0).

Models written into OUT_DIR:
  synth1-caption.onnx  format 2, the one-digit Bouncing MNIST grammar (caption_length 2)
  synth2-caption.onnx  format 2, the two-digit grammar (caption_length 4)
  synth1-uncond.onnx   format 2, unconditional (caption_grammar null, caption_length 0)
  synth1-words.onnx    format 1, word vocabulary, caption_length 7 (format 1 is still read)
  colour/synth1-rgb.onnx  format 2, one-digit grammar, 3 channels (R, G, B)

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

# Format 1: the word vocabulary.
WORDS = ["<pad>", "digit"] + [str(d) for d in range(10)] + [
    "is", "moving", "up", "and", "down", "left", "right", "bouncing", "the", "are"]

ONE_DIGIT = "digit 3 is moving up and down"
TWO_DIGITS = "digit 1 is moving up and down and digit 2 is moving left and right"


def grammar(digits):
    """The Bouncing MNIST caption grammar, as syncdraw_format::Grammar serialises."""
    return {
        "object": "digit {digit} is moving {motion}",
        "joiner": "and",
        "min_objects": digits,
        "max_objects": digits,
        "slots": [
            {"name": "digit", "role": "what", "values": [str(d) for d in range(10)]},
            {"name": "motion", "role": "where", "values": ["up and down", "left and right"]},
        ],
    }


def ids_len(g):
    return g["max_objects"] * len(g["slots"])


def build(path, *, frames, height, width, timesteps, z_dim, caption_length,
          version=2, caption_grammar=None, channels=1, example_captions=None,
          meta_overrides=None, drop_meta=(), drop_output=None, video_height=None,
          z_name="z", z_type=TensorProto.FLOAT, nan_pixel=False):
    """A synthetic model. The caption, when there is one, adds one embedding row per
    caption position: for format 1 the row of the word id (the pad row is zero); for
    format 2 the row of (object, slot, value id) in a table with a block per position,
    so that every slot of every object changes the video (id 0, an absent object,
    adds nothing)."""
    rng = np.random.default_rng(1234)
    p = frames * channels * height * width
    inits = [
        numpy_helper.from_array((rng.standard_normal((z_dim, p)) * 0.6).astype(np.float32), "W"),
        numpy_helper.from_array(np.array(
            [-1, timesteps, frames, channels, height, width], dtype=np.int64), "shape6"),
        numpy_helper.from_array(np.array(timesteps - 1, dtype=np.int64), "last"),
    ]
    if nan_pixel:
        inits[0] = numpy_helper.from_array(
            numpy_helper.to_array(inits[0]).copy() * np.where(np.arange(p) == 5, np.nan, 1.0)
            .astype(np.float32), "W")
    if z_type == TensorProto.FLOAT:
        nodes = [helper.make_node("MatMul", [z_name, "W"], ["zw"])]
    else:
        nodes = [helper.make_node("Cast", [z_name], ["zf"], to=TensorProto.FLOAT),
                 helper.make_node("MatMul", ["zf", "W"], ["zw"])]
    inputs = [helper.make_tensor_value_info(z_name, z_type, ["batch", timesteps, z_dim])]
    steps = "zw"
    if caption_length > 0:
        inputs.append(helper.make_tensor_value_info("caption", TensorProto.INT64, ["batch", caption_length]))
        if version == 1 or caption_grammar is None:
            rows, offsets = len(WORDS), None
        else:
            # Position i = object * slots + slot takes ids 0..=len(values).
            sizes = [len(s["values"]) + 1 for s in caption_grammar["slots"]]
            per_pos = [sizes[i % len(sizes)] for i in range(caption_length)]
            offsets = np.cumsum([0] + per_pos[:-1]).astype(np.int64)
            rows = int(sum(per_pos))
        emb = (rng.standard_normal((rows, p)) * 0.3).astype(np.float32)
        if offsets is None:
            emb[0] = 0.0  # the pad id adds nothing
            index = "caption"
        else:
            emb[offsets] = 0.0  # id 0 (absent object) adds nothing
            inits.append(numpy_helper.from_array(offsets, "offsets"))
            nodes.append(helper.make_node("Add", ["caption", "offsets"], ["rows"]))
            index = "rows"
        inits.append(numpy_helper.from_array(emb, "E"))
        nodes += [
            helper.make_node("Gather", ["E", index], ["emb"], axis=0),
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
    if example_captions is None:
        example_captions = [ONE_DIGIT] if caption_length else []
    meta = {
        "syncdraw.format_version": str(version),
        "syncdraw.frames": str(frames),
        "syncdraw.height": str(height),
        "syncdraw.width": str(width),
        "syncdraw.channels": str(channels),
        "syncdraw.timesteps": str(timesteps),
        "syncdraw.z_dim": str(z_dim),
        "syncdraw.caption_length": str(caption_length),
    }
    if version == 1:
        vocab = None if caption_length == 0 else {
            "tokens": WORDS, "pad_id": 0, "lowercase": True, "split": "non-alphanumeric"}
        meta["syncdraw.vocabulary"] = json.dumps(vocab)
    else:
        meta["syncdraw.caption_grammar"] = json.dumps(caption_grammar)
    meta.update({
        "syncdraw.dataset": "synthetic-test",
        "syncdraw.variant": "syncdraw",
        "syncdraw.example_captions": json.dumps(example_captions),
        "syncdraw.training_steps": "0",
        "syncdraw.test_nll": "null",
    })
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
    g1, g2 = grammar(1), grammar(2)
    out = lambda n: os.path.join(a.out_dir, n)
    build(out("synth1-caption.onnx"), caption_length=ids_len(g1), caption_grammar=g1, **dims)
    build(out("synth2-caption.onnx"), caption_length=ids_len(g2), caption_grammar=g2,
          example_captions=[TWO_DIGITS], **dims)
    build(out("synth1-uncond.onnx"), caption_length=0, **dims)
    build(out("synth1-words.onnx"), version=1, caption_length=7, **dims)
    # In its own folder, so that the model-choice tests see only the grey models.
    os.makedirs(os.path.join(a.out_dir, "colour"), exist_ok=True)
    build(out("colour/synth1-rgb.onnx"), caption_length=ids_len(g1), caption_grammar=g1, channels=3,
          **dims)
    if a.only_good:
        return
    os.makedirs(os.path.join(a.out_dir, "bad"), exist_ok=True)
    out = lambda n: os.path.join(a.out_dir, "bad", n)
    good1 = dict(caption_length=ids_len(g1), caption_grammar=g1, **dims)
    build(out("bad-version.onnx"), meta_overrides={"syncdraw.format_version": "3"}, **good1)
    build(out("bad-missing-frames.onnx"), drop_meta=["syncdraw.frames"], **good1)
    build(out("bad-no-canvases.onnx"), drop_output="canvases", **good1)
    build(out("bad-video-shape.onnx"), video_height=a.size[0] + 1, **good1)
    build(out("bad-input-name.onnx"), caption_length=0, z_name="noise", **dims)
    build(out("bad-vocab-null.onnx"), version=1, caption_length=7,
          meta_overrides={"syncdraw.vocabulary": "null"}, **dims)
    # Format 2 with the grammar missing, null, not JSON, of the wrong length, malformed.
    build(out("bad-grammar-missing.onnx"), drop_meta=["syncdraw.caption_grammar"], **good1)
    build(out("bad-grammar-null.onnx"), caption_length=ids_len(g1), caption_grammar=None, **dims)
    build(out("bad-grammar-json.onnx"), meta_overrides={"syncdraw.caption_grammar": "{digit"},
          **good1)
    build(out("bad-grammar-length.onnx"), caption_length=ids_len(g2), caption_grammar=g1, **dims)
    no_motion = dict(g1, object="digit {digit} is moving")
    build(out("bad-grammar-invalid.onnx"), caption_length=ids_len(g1),
          caption_grammar=no_motion, **dims)
    # Crafted files: truncated, a length field far past the end, z of the wrong
    # element type, an output holding NaN (pixel 5 of the first frame).
    build(out("bad-z-type.onnx"), z_type=TensorProto.DOUBLE, **good1)
    build(out("bad-nan-output.onnx"), nan_pixel=True, **good1)
    whole = open(out("bad-nan-output.onnx"), "rb").read()
    with open(out("bad-truncated.onnx"), "wb") as f:
        f.write(whole[: len(whole) * 3 // 5])
    with open(out("bad-huge-length.onnx"), "wb") as f:
        # ir_version 8, then field 7 (graph) claiming 2^62 bytes.
        f.write(bytes([0x08, 0x08, 0x3a]) + bytes([0x80] * 8 + [0x40]) + b"\x00" * 64)


if __name__ == "__main__":
    main()
