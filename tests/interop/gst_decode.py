#!/usr/bin/python3
"""Decodes a WebM file with GStreamer (matroskademux; vp8dec, vp9dec or av1dec by the
track's codec id in the file's head; opusdec), or an MP4 file
(`.mp4`: qtdemux, h264parse, openh264dec, opusdec) and prints, as one
JSON line, what came out: every decoded picture's time, the picture size, and the number
of decoded audio buffers. Counted with pad probes on the decoders' outputs (gst-launch's
-v messages are coalesced under load and cannot be counted). Exits 1 on a pipeline error.
"""

import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    Gst.init(None)
    path = sys.argv[1]
    if path.endswith(".mp4"):
        demux, video = "qtdemux", "h264parse ! openh264dec"
    else:
        with open(path, "rb") as f:
            head = f.read(4096)
        video = "vp9dec" if b"V_VP9" in head else "av1dec" if b"V_AV1" in head else "vp8dec"
        demux = "matroskademux"
    pipe = Gst.parse_launch(
        f'filesrc location="{path}" ! {demux} name=d '
        f"d.video_0 ! queue ! {video} name=vdec ! fakesink sync=false "
        "d.audio_0 ! queue ! opusdec name=adec ! fakesink sync=false"
    )
    out = {"video_pts": [], "audio": 0, "width": None, "height": None}

    def on_video(pad, info):
        buf = info.get_buffer()
        if buf.pts != Gst.CLOCK_TIME_NONE:
            out["video_pts"].append(buf.pts / Gst.SECOND)
        caps = pad.get_current_caps()
        if caps is not None:
            s = caps.get_structure(0)
            out["width"] = s.get_value("width")
            out["height"] = s.get_value("height")
        return Gst.PadProbeReturn.OK

    def on_audio(_pad, _info):
        out["audio"] += 1
        return Gst.PadProbeReturn.OK

    pipe.get_by_name("vdec").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_video)
    pipe.get_by_name("adec").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_audio)
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(
        60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipe.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR:
        err = msg.parse_error()[0].message if msg is not None else "timeout"
        out["error"] = err
        print(json.dumps(out))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
