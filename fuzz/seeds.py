#!/usr/bin/env python3
"""Writes the seed inputs of the rtp, rtcp, trickle_ice, relay and recorder targets into
corpus/ (the recorder's from its test data: GStreamer's VP9 packets, libaom's AV1).

The SDP seeds are real offers: Chromium's (captured with `chromium-offers.mjs`) and
str0m's, as the integration tests' peers make them. RTP seeds follow Chromium's offer
(corpus/sdp_offer/chromium_whip.sdp): mid in extension 4, rid in 10; VP8 is payload
type 96, VP9 98, H.264 102, AV1 45, Opus 111; audio is mid 0, video mid 1 with layers
q, h, f. Run from fuzz/: python3 seeds.py
"""
import struct
from pathlib import Path

MID, RID = 4, 10


def rtp(pt, seq, ts, ssrc, payload, mid, rid=None, marker=False):
    ext = bytes([(MID << 4) | (len(mid) - 1)]) + mid.encode()
    if rid:
        ext += bytes([(RID << 4) | (len(rid) - 1)]) + rid.encode()
    ext += b"\0" * (-len(ext) % 4)
    header = struct.pack("!BBHII", 0x90, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    return header + struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext + payload


def packets(*pkts):
    return b"".join(struct.pack("!H", len(p)) + p for p in pkts)


def vp8(pid, tl0, key):
    desc = bytes([0x90, 0xE0, 0x80 | pid >> 8, pid & 0xFF, tl0, 0x00])
    if key:  # frame tag with P=0, start code, 640x480
        return desc + bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + b"\x55" * 32
    return desc + bytes([0x11, 0x02, 0x00]) + b"\x33" * 32


def vp9(pid, key):
    b0 = 0x80 | 0x08 | 0x04 | (0 if key else 0x40)  # I, B, E; P for a delta
    return bytes([b0, 0x80 | pid >> 8, pid & 0xFF]) + b"\x82\x49\x83\x42" + b"\x11" * 24


SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x02, 0x80, 0xBF, 0xE5])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])


def h264_stap_a():
    return bytes([0x18]) + struct.pack("!H", len(SPS)) + SPS + struct.pack("!H", len(PPS)) + PPS


def h264_fu_a(start, idr):
    nal = 5 if idr else 1
    return bytes([0x7C, (0x80 if start else 0x40) | nal]) + b"\x88\x84" * 16


def av1(new_sequence):
    # Aggregation header W=1 (one OBU), N for a new coded video sequence; then an OBU.
    head = 0x10 | (0x08 if new_sequence else 0)
    obu = bytes([0x0A, 0x0B, 0x00, 0x00, 0x00, 0x24, 0xC4, 0xFF, 0xDF, 0x00, 0x68, 0x02])
    return bytes([head]) + obu + b"\x22" * 24


def video(pt, payloads, rid="q", ssrc=0x1111):
    # Three times over: the first keyframes come before the layer is ranked (250 ms).
    payloads = payloads * 3
    return packets(*(rtp(pt, 100 + i, 9000 * i, ssrc, p, "1", rid, marker=True)
                     for i, p in enumerate(payloads)))


RTP = {
    # Three layers, a keyframe then a delta frame each, twice (picture ids wrap on f).
    "vp8_layers.rtp": packets(*(
        rtp(96, seq, 3000 * seq, ssrc, vp8((pid + seq) % 0x8000, seq, seq % 2 == 1), "1", rid, seq % 2 == 0)
        for seq in range(1, 5)
        for ssrc, rid, pid in ((0x1111, "q", 10), (0x2222, "h", 500), (0x3333, "f", 0x7FFE))
    )),
    "vp9.rtp": video(98, [vp9(3, True), vp9(4, False)]),
    "h264.rtp": video(102, [h264_stap_a(), h264_fu_a(True, True), h264_fu_a(False, True),
                            h264_fu_a(True, False)]),
    "av1.rtp": video(45, [av1(True), av1(False)]),
    "opus.rtp": packets(rtp(111, 7, 960, 0x4444, b"\xFC\xFF\xFE" + b"\x01" * 40, "0"),
                        rtp(111, 8, 1920, 0x4444, b"\xFC\xFF\xFE" + b"\x02" * 40, "0")),
}


def rtcp(pt, fmt, body):
    words = (4 + len(body)) // 4 - 1
    return struct.pack("!BBH", 0x80 | fmt, pt, words) + body


SENDER, MEDIA = 0xAAAA, 0x1111
RR = rtcp(201, 1, struct.pack("!I", SENDER) + struct.pack("!IIIIII", MEDIA, 0x01000010, 120, 30, 0, 0))
RTCP = {
    "rr.rtcp": RR,
    "pli.rtcp": RR + rtcp(206, 1, struct.pack("!II", SENDER, MEDIA)),
    "fir.rtcp": RR + rtcp(206, 4, struct.pack("!IIIB3x", SENDER, 0, MEDIA, 3)),
    "nack.rtcp": RR + rtcp(205, 1, struct.pack("!IIHH", SENDER, MEDIA, 118, 0b1010)),
    "remb.rtcp": RR + rtcp(206, 15, struct.pack("!II4sBBHI", SENDER, 0, b"REMB", 1, 0x12, 0x3456, MEDIA)),
    "sr_sdes_bye.rtcp": rtcp(200, 0, struct.pack("!IIIII", SENDER, 0xE000_0000, 1, 9000, 10) + struct.pack("!II", 20, 2000))
    + rtcp(202, 1, struct.pack("!IBB", SENDER, 1, 4) + b"cnam" + b"\0\0")
    + rtcp(203, 1, struct.pack("!I", SENDER)),
}

FRAG = {
    "trickle.frag": "a=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
    "a=candidate:4090255888 1 udp 2113937151 192.0.2.10 42478 typ host generation 0 network-cost 999\r\n"
    "a=candidate:842163049 1 udp 1677729535 198.51.100.7 61010 typ srflx raddr 192.0.2.10 rport 42478 generation 0\r\n"
    "a=candidate:1 1 tcp 1518280447 192.0.2.10 9 typ host tcptype active\r\n"
    "a=candidate:2 1 udp 2113939711 2001:db8::1 50000 typ host\r\na=end-of-candidates\r\n",
    "restart.frag": "a=ice-ufrag:newu\r\na=ice-pwd:newpasswordnewpassword00\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n",
    "end.frag": "a=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=end-of-candidates\r\n",
}


def relay_frame(msg_type, body):
    # edge-relay's control frame: u16 length, version 1, type, body (edge-relay/src/wire.rs).
    return struct.pack("!HBB", 2 + len(body), 1, msg_type) + body


RELAY = {
    "subscribe.relay": relay_frame(1, b"\x03cam\x83\x02" + struct.pack("!QQ", 1, 2)),
    "update_keyframe_nack.relay": relay_frame(4, b"\x83")
    + relay_frame(5, b"\x01")
    + relay_frame(6, b"\x00\x03" + struct.pack("!HHH", 5, 6, 0xFFFF)),
    "state_restart.relay": relay_frame(7, b"\x02"),
    # A media datagram: subscription 1, layer 0, keyframe flag, then RTP.
    "datagram.relay": struct.pack("!IBB", 1, 0, 1) + rtp(96, 5, 9000, 0x1111, b"payload", "1"),
}


def recorder_packet(codec, marker, seq_step, ts_step, payload):
    """The recorder target's packet: flags (codec 0-4: VP8, VP9, H.264, AV1, Opus; marker),
    steps, length, payload (at most 255 bytes)."""
    payload = payload[:255]
    return bytes([codec | (8 if marker else 0), seq_step, ts_step, len(payload)]) + payload


def recorder_seeds():
    data = Path("../sfu/src/record/testdata")
    vp9 = (data / "ball-320x240.vp9.rtp").read_bytes()
    packets, at, last_ts = [], 0, None
    while at < len(vp9) and len(packets) < 6:
        (n,) = struct.unpack("!H", vp9[at : at + 2])
        p = vp9[at + 2 : at + 2 + n]
        at += 2 + n
        ts = struct.unpack("!I", p[4:8])[0]
        step = 0 if ts == last_ts else 10
        last_ts = ts
        packets.append(recorder_packet(1, p[1] & 0x80, 3, step, p[12:]))
    av1 = (data / "ball-320x240.av1.obu").read_bytes()
    (n,) = struct.unpack("!I", av1[:4])
    tu = av1[4 : 4 + n]
    # One OBU element per packet (W=1), the temporal delimiter (2 bytes) left out, the
    # first packet a new coded video sequence (N); the OBUs keep their size fields.
    obus, rest = [], tu[2:]
    while rest:
        size, shift, i = 0, 0, 1
        while True:
            b = rest[i]
            size |= (b & 0x7F) << shift
            shift += 7
            i += 1
            if b < 0x80:
                break
        obus.append(rest[: i + size])
        rest = rest[i + size :]
    av1_packets = [
        recorder_packet(3, k == len(obus) - 1, 3, 10 if k == 0 else 0, bytes([0x18 if k == 0 else 0x10]) + o)
        for k, o in enumerate(obus)
    ]
    return {"vp9.rec": b"".join(packets), "av1.rec": b"".join(av1_packets)}


def main():
    whep = Path("corpus/sdp_offer/chromium_whep.sdp").read_text()
    attr = lambda name: next(l.split(":", 1)[1] for l in whep.splitlines() if l.startswith(f"a={name}:"))
    creds = {"u": attr("ice-ufrag"), "p": attr("ice-pwd")}
    targets = (("rtp", RTP), ("rtcp", RTCP), ("trickle_ice", FRAG), ("relay", RELAY))
    for target, seeds in targets + (("recorder", recorder_seeds()),):
        out = Path("corpus") / target
        out.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            data = data.format(**creds).encode() if isinstance(data, str) else data
            (out / name).write_bytes(data)


main()
