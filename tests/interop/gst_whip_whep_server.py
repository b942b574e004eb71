#!/usr/bin/python3
"""A WHIP/WHEP server made of GStreamer's webrtcbin, for testing `cascade loadtest` on a
server nobody here wrote the WebRTC of: libnice's full ICE (not ICE-lite), OpenSSL DTLS
with an RSA certificate and the DTLS client role (a=setup:active), no simulcast, its own
URL layout (POST /ingest/NAME, /egress/NAME), a relative Location, and no /healthz or
/metrics.

The publisher's RTP is forwarded to every viewer untouched (no decoding: the load
test's stamps inside each payload survive), with the publisher's SSRCs and payload types.
The answer to a viewer negotiates no header extensions, so a viewer must place the
packets by SSRC or payload type (RFC 8843 §9.2): by default the answer announces the
SSRCs (`a=ssrc`); with --no-ssrc it does not (its a=ssrc lines are left out: webrtcbin
not told the SSRCs writes them for some m-lines only, depending on timing), and only the
payload type is left, which is what browsers then go by. DELETE answers 200 and
keeps the session: the fixture lives for one test.

Runs on Debian's /usr/bin/python3 (python3-gi). Prints "listening on http://HOST:PORT".

usage: gst_whip_whep_server.py [--port 0] [--no-ssrc]
"""

import argparse
import itertools
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

# What a viewer's sink pad is told: enough for webrtcbin to write its m-line, and (unless
# --no-ssrc) the SSRC, which webrtcbin then announces in its answer.
CAPS_FIELDS = ("media", "encoding-name", "payload", "clock-rate", "encoding-params")


class Stream:
    def __init__(self):
        self.tees = {}  # media kind -> (tee, caps)
        self.ready = threading.Condition()


class Server:
    def __init__(self, announce_ssrc):
        self.announce_ssrc = announce_ssrc
        self.caps_fields = CAPS_FIELDS + (("ssrc",) if announce_ssrc else ())
        self.pipe = Gst.Pipeline.new("server")
        self.pipe.set_state(Gst.State.PLAYING)
        self.streams = {}
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.keep = []  # Python wrappers PyGObject must not drop (see new_webrtcbin)

    def stream(self, name):
        with self.lock:
            return self.streams.setdefault(name, Stream())

    def new_webrtcbin(self):
        wb = Gst.ElementFactory.make("webrtcbin")
        wb.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        wb.set_property("latency", 50)
        # libnice leaves loopback out of its candidates; the tests run on loopback. (The
        # ice-agent wrapper is kept: PyGObject on GStreamer 1.22 drops one reference too
        # many when it dies.)
        ice = wb.get_property("ice-agent")
        ice.set_property("ice-tcp", False)
        local = Nice.Address.new()
        local.set_from_string("127.0.0.1")
        ice.get_property("agent").add_local_address(local)
        self.keep.append(ice)
        self.pipe.add(wb)
        wb.sync_state_with_parent()
        return wb

    def on_publisher_pad(self, _wb, pad, stream):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        s = caps.get_structure(0)
        kind = s.get_string("media")
        print(f"publisher sends {kind}: {s.get_string('encoding-name')}", file=sys.stderr, flush=True)
        # Fields are removed from a copy rather than copied one by one: PyGObject turns
        # a guint such as the SSRC into a gint on the way back and fails above 2^31.
        keep = s.copy()
        for i in reversed(range(keep.n_fields())):
            if keep.nth_field_name(i) not in self.caps_fields:
                keep.remove_field(keep.nth_field_name(i))
        tee = Gst.ElementFactory.make("tee")
        tee.set_property("allow-not-linked", True)
        self.pipe.add(tee)
        tee.sync_state_with_parent()
        pad.link(tee.get_static_pad("sink"))
        with stream.ready:
            stream.tees[kind] = (tee, Gst.Caps.from_string(keep.to_string()))
            stream.ready.notify_all()

    @staticmethod
    def call(wb, signal, arg, field=None):
        """Emits a webrtcbin action and waits for its promise; raises on an error reply;
        returns a copy of `field` of the reply (taken while the promise still owns it)."""
        p = Gst.Promise.new()
        wb.emit(signal, arg, p)
        p.wait()
        reply = p.get_reply()
        if reply is not None and reply.has_field("error"):
            raise RuntimeError(f"{signal}: {reply.get_value('error').message}")
        return reply.get_value(field).copy() if field else None

    def answer(self, wb, offer_sdp):
        ok, msg = GstSdp.SDPMessage.new_from_text(offer_sdp)
        if ok != GstSdp.SDPResult.OK:
            raise ValueError("the offer is not SDP")
        offer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, msg)
        self.call(wb, "set-remote-description", offer)
        answer = self.call(wb, "create-answer", None, "answer")
        self.call(wb, "set-local-description", answer)
        # No trickle: the answer goes out with every candidate in it.
        end = time.monotonic() + 5
        while time.monotonic() < end:
            if wb.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
                break
            time.sleep(0.02)
        return wb.get_property("local-description").sdp.as_text()

    def publish(self, name, offer):
        stream = self.stream(name)
        wb = self.new_webrtcbin()
        wb.connect("pad-added", self.on_publisher_pad, stream)
        return self.answer(wb, offer)

    def watch(self, name, offer):
        stream = self.stream(name)
        with stream.ready:
            stream.ready.wait_for(lambda: len(stream.tees) == 2, timeout=10)
            tees = dict(stream.tees)
        if not tees:
            raise LookupError(f"nothing is published on {name}")
        wb = self.new_webrtcbin()
        for tee, caps in tees.values():
            queue = Gst.ElementFactory.make("queue")
            queue.set_property("leaky", "downstream")
            self.pipe.add(queue)
            sink = wb.request_pad_simple("sink_%u")
            trans = sink.get_property("transceiver")
            trans.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            trans.set_property("codec-preferences", caps)
            queue.get_static_pad("src").link(sink)
            queue.sync_state_with_parent()
            tee.request_pad_simple("src_%u").link(queue.get_static_pad("sink"))
        answer = self.answer(wb, offer)
        if not self.announce_ssrc:
            answer = "".join(
                line for line in answer.splitlines(keepends=True) if not line.startswith("a=ssrc")
            )
        return answer


def handler(server):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            kind, _, name = self.path.strip("/").partition("/")
            if kind not in ("ingest", "egress") or not name:
                return self.reply(404)
            offer = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            try:
                if kind == "ingest":
                    answer = server.publish(name, offer)
                else:
                    answer = server.watch(name, offer)
            except LookupError as e:
                return self.reply(404, str(e).encode())
            except Exception as e:  # noqa: BLE001 - the fixture reports, the test fails
                return self.reply(500, str(e).encode())
            # Relative to the request's URL, as RFC 3986 allows.
            location = f"../session/{next(server.ids)}"
            self.reply(
                201,
                answer.encode(),
                [("Content-Type", "application/sdp"), ("Location", location)],
            )

        def do_DELETE(self):
            self.reply(200 if self.path.startswith("/session/") else 404)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-ssrc", action="store_true", help="announce no SSRCs to viewers")
    args = ap.parse_args()
    Gst.init(None)
    server = Server(announce_ssrc=not args.no_ssrc)
    http = ThreadingHTTPServer(("127.0.0.1", args.port), handler(server))
    host, port = http.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    http.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
