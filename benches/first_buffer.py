"""Time from NULL to the first buffer of syncdrawsrc, in milliseconds, on stdout.

Runs under the system python3 with PyGObject (gi), which the GStreamer packages
bring; the benchmark starts it once per measurement so every run is a fresh process
(ONNX Runtime loaded, model read and first batch computed within the timed span):

    python3 benches/first_buffer.py MODEL.onnx "CAPTION" [BATCH] [PROVIDER]

The clock starts when the pipeline (created, properties set, state NULL) is asked to
go to PLAYING and stops in fakesink's handoff for the first buffer.
"""
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    model, caption = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    provider = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    Gst.init(None)
    pipe = Gst.Pipeline.new("p")
    src = Gst.ElementFactory.make("syncdrawsrc", "src")
    sink = Gst.ElementFactory.make("fakesink", "sink")
    if src is None or sink is None:
        sys.exit("syncdrawsrc not found: is GST_PLUGIN_PATH set (source build-env.sh)?")
    src.set_property("model-location", model)
    src.set_property("caption", caption)
    src.set_property("batch-size", batch)
    src.set_property("seed", 1)
    src.set_property("num-buffers", 1)
    Gst.util_set_object_arg(src, "execution-provider", provider)
    sink.set_property("sync", False)
    sink.set_property("signal-handoffs", True)
    pipe.add(src)
    pipe.add(sink)
    src.link(sink)
    got = threading.Event()
    first = []

    def on_handoff(_sink, _buf, _pad):
        if not first:
            first.append(time.perf_counter())
            got.set()

    sink.connect("handoff", on_handoff)
    bus = pipe.get_bus()
    t0 = time.perf_counter()
    pipe.set_state(Gst.State.PLAYING)
    deadline = t0 + 120
    while not got.is_set() and time.perf_counter() < deadline:
        msg = bus.timed_pop_filtered(10 * Gst.MSECOND, Gst.MessageType.ERROR)
        if msg is not None:
            err, dbg = msg.parse_error()
            pipe.set_state(Gst.State.NULL)
            sys.exit(f"pipeline error: {err.message} ({dbg})")
    pipe.set_state(Gst.State.NULL)
    if not first:
        sys.exit("no buffer within 120 s")
    print(f"{(first[0] - t0) * 1e3:.3f}")


if __name__ == "__main__":
    main()
