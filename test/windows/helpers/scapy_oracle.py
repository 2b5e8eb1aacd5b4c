#!/usr/bin/env python3
"""Independent oracle for switchyard's Windows packet code: builds golden packets with scapy and
checks packets the TypeScript code rewrote. One JSON request per line on stdin, one JSON answer per
line on stdout. Requests:
  {"op": "build", "family": 4|6, "src", "dst", "sport", "dport", "flags": "S", "seq", "ack",
   "payload": hex, "ext": ["hbh", "dst", "routing", "frag"], "ipopts": bool}
  {"op": "check", "hex": ...}  -> fields + whether each checksum is right
"""
import json
import sys
import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, IPv6, TCP, Raw, raw, IPOption_NOP, IPOption_EOL  # noqa: E402
from scapy.utils import checksum  # noqa: E402
from scapy.layers.inet import in4_chksum  # noqa: E402
from scapy.layers.inet6 import in6_chksum  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, IPv6ExtHdrFragment,
)

EXT = {
    "hbh": lambda: IPv6ExtHdrHopByHop(),
    "dst": lambda: IPv6ExtHdrDestOpt(),
    "routing": lambda: IPv6ExtHdrRouting(addresses=[], segleft=0),
    "frag": lambda: IPv6ExtHdrFragment(offset=0, m=0, id=0x1234),
}


def build(r):
    opts = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)] if "S" in r.get("flags", "") else []
    tcp = TCP(sport=r["sport"], dport=r["dport"], flags=r.get("flags", "S"), seq=r.get("seq", 1000),
              ack=r.get("ack", 0), window=64240, options=opts)
    payload = bytes.fromhex(r.get("payload", ""))
    if r["family"] == 4:
        ip = IP(src=r["src"], dst=r["dst"], ttl=64, id=0x4242, flags="DF")
        if r.get("ipopts"):
            ip.options = [IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_EOL()]
        pkt = ip
    else:
        pkt = IPv6(src=r["src"], dst=r["dst"], hlim=64)
        for e in r.get("ext", []):
            pkt = pkt / EXT[e]()
    pkt = pkt / tcp
    if payload:
        pkt = pkt / Raw(payload)
    return {"hex": raw(pkt).hex()}


def check(r):
    data = bytes.fromhex(r["hex"])
    version = data[0] >> 4
    pkt = IP(data) if version == 4 else IPv6(data)
    tcp = pkt[TCP]
    out = {
        "family": version,
        "src": pkt.src,
        "dst": pkt.dst,
        "sport": tcp.sport,
        "dport": tcp.dport,
        "flags": str(tcp.flags),
        "seq": tcp.seq,
        "ack": tcp.ack,
        "payload": bytes(tcp.payload).hex(),
        "length": len(data),
    }
    # Checksums are verified on the raw bytes: the one's-complement sum over the pseudo-header
    # (scapy's in4_chksum/in6_chksum, which also handle an IPv6 routing header's final destination)
    # and the TCP bytes as sent, checksum field included, must come out as zero. (Rebuilding the
    # packet from scapy's fields instead would miss damage in bytes scapy normalises, like option
    # padding.)
    if version == 4:
        ihl = pkt.ihl * 4
        out["ip_chksum_ok"] = checksum(data[:ihl]) == 0
        out["ttl"] = pkt.ttl
        tcp_bytes = data[ihl:pkt.len]
        out["tcp_chksum_ok"] = in4_chksum(6, pkt, tcp_bytes) == 0
    else:
        off = 40
        layers = []
        layer = pkt.payload
        while layer is not None and not isinstance(layer, TCP):
            layers.append(type(layer).__name__)
            off += len(raw(layer)) - len(raw(layer.payload))
            layer = layer.payload
        out["ext"] = layers
        out["ip_chksum_ok"] = True
        out["hlim"] = pkt.hlim
        tcp_bytes = data[off:40 + pkt.plen]
        out["tcp_chksum_ok"] = in6_chksum(6, tcp, tcp_bytes) == 0
    out["tcp_chksum"] = tcp.chksum
    return out


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
            res = build(r) if r["op"] == "build" else check(r)
        except Exception as e:  # the test shows the oracle's error
            res = {"error": repr(e)}
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
