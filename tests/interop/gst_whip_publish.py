#!/usr/bin/python3
"""Publish a test pattern (VP8, H.264 with --h264, VP9 with --vp9) and a tone (Opus) over WHIP with
GStreamer's webrtcbin.

webrtcbin is the engine of whipsink/whipclientsink and of many WHIP tools; Debian 12's
GStreamer (1.22) has no WHIP element, so this script does the WHIP exchange itself:
one POST of a complete (non-trickle) offer, the answer applied, DELETE on exit.
webrtcbin's DTLS certificate is RSA, which is the point of running it against a node.

Runs on Debian's /usr/bin/python3 (python3-gi); prints one line per milestone on stdout:
"posted <status>", "ice <state>", "dtls <state>", "connected".

The video is one layer (no simulcast: webrtcbin offers none), WIDTHxHEIGHT at 30 fps and
about BITRATE bit/s.

usage: gst_whip_publish.py URL [--token T] [--seconds N] [--width W] [--height H]
                           [--bitrate B] [--h264 | --vp9]

--h264: openh264enc (constrained baseline, a keyframe a second, SPS and PPS before each
one, as OBS and libwebrtc send them) and rtph264pay instead of VP8.
--vp9: vp9enc (profile 0, real time, a keyframe a second) and rtpvp9pay instead of VP8.
"""

import argparse
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

VP8 = """
  ! videoconvert ! vp8enc deadline=1 keyframe-max-dist=30 target-bitrate={bitrate}
  ! rtpvp8pay pt=96 picture-id-mode=15-bit
  ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! pub.
"""

H264 = """
  ! videoconvert ! openh264enc gop-size=30 bitrate={bitrate} complexity=low
  ! video/x-h264,profile=constrained-baseline
  ! rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency
  ! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,packetization-mode=(string)1,profile-level-id=(string)42e01f
  ! pub.
"""

VP9 = """
  ! videoconvert ! video/x-raw,format=I420 ! vp9enc deadline=1 keyframe-max-dist=30
    target-bitrate={bitrate} cpu-used=8
  ! rtpvp9pay pt=98 picture-id-mode=15-bit
  ! application/x-rtp,media=video,encoding-name=VP9,payload=98,clock-rate=90000 ! pub.
"""

PIPELINE = """
webrtcbin name=pub bundle-policy=max-bundle
videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=30/1
{encode}
audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc
  ! rtpopuspay pt=111
  ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! pub.
"""


def say(line):
    print(line, flush=True)


class Publisher:
    def __init__(self, url, token, seconds, video):
        self.url = url
        self.token = token
        self.location = None
        self.loop = GLib.MainLoop()
        codec = video.pop("codec")
        encode = {"h264": H264, "vp9": VP9}.get(codec, VP8).format(**video)
        self.pipe = Gst.parse_launch(PIPELINE.format(encode=encode, **video))
        self.webrtc = self.pipe.get_by_name("pub")
        # libnice leaves loopback out of its candidates; the node under test is on loopback.
        # (Held for the pipeline's life: PyGObject drops one reference too many on the
        # ice-agent property of GStreamer 1.22 when its wrapper dies.)
        self.ice = self.webrtc.get_property("ice-agent")
        self.ice.set_property("ice-tcp", False)
        local = Nice.Address.new()
        local.set_from_string("127.0.0.1")
        self.ice.get_property("agent").add_local_address(local)
        index = 0
        while (t := self.webrtc.emit("get-transceiver", index)) is not None:
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            index += 1
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("notify::ice-connection-state", self.on_ice)
        self.webrtc.connect("notify::connection-state", self.on_connection)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)
        GLib.timeout_add_seconds(seconds, self.loop.quit)
        self.failed = False

    def run(self):
        self.pipe.set_state(Gst.State.PLAYING)
        try:
            self.loop.run()
        finally:
            self.delete()
            self.pipe.set_state(Gst.State.NULL)
        return 1 if self.failed else 0

    def fail(self, why):
        say(f"error {why}")
        self.failed = True
        self.loop.quit()

    def on_error(self, _bus, msg):
        err, debug = msg.parse_error()
        self.fail(f"{err.message} ({debug})")

    def on_negotiation_needed(self, element):
        promise = Gst.Promise.new_with_change_func(self.on_offer, element, None)
        element.emit("create-offer", None, promise)

    def on_offer(self, promise, element, _):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        if offer is None:
            self.fail(f"create-offer: {reply.to_string()}")
            return
        element.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, element, _pspec):
        # WHIP without trickle: the offer goes out once every candidate is in it.
        if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.post)

    def post(self):
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        req = urllib.request.Request(self.url, data=sdp.encode(), method="POST")
        req.add_header("Content-Type", "application/sdp")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, answer = resp.status, resp.read().decode()
                location = resp.headers.get("Location")
        except urllib.error.HTTPError as e:
            self.fail(f"POST {e.code}: {e.read().decode(errors='replace')}")
            return False
        except OSError as e:
            self.fail(f"POST failed: {e}")
            return False
        say(f"posted {status}")
        if location:
            self.location = urllib.parse.urljoin(self.url, location)
        _, msg = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.webrtc.emit("set-remote-description", desc, Gst.Promise.new())
        return False

    def on_ice(self, element, _pspec):
        say(f"ice {element.get_property('ice-connection-state').value_nick}")

    def on_connection(self, element, _pspec):
        state = element.get_property("connection-state")
        say(f"dtls {state.value_nick}")
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            say("connected")
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            self.fail("peer connection failed")

    def delete(self):
        if not self.location:
            return
        req = urllib.request.Request(self.location, method="DELETE")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            urllib.request.urlopen(req, timeout=5).close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--token")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--bitrate", type=int, default=300_000)
    codec = ap.add_mutually_exclusive_group()
    codec.add_argument("--h264", dest="codec", action="store_const", const="h264")
    codec.add_argument("--vp9", dest="codec", action="store_const", const="vp9")
    args = ap.parse_args()
    Gst.init(None)
    video = {
        "width": args.width,
        "height": args.height,
        "bitrate": args.bitrate,
        "codec": args.codec,
    }
    return Publisher(args.url, args.token, args.seconds, video).run()


if __name__ == "__main__":
    sys.exit(main())
