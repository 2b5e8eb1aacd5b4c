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
    fresh = pkt.copy()
    del fresh[TCP].chksum
    if version == 4:
        del fresh.chksum
        rebuilt = IP(raw(fresh))
        out["ip_chksum_ok"] = rebuilt.chksum == pkt.chksum
        out["ttl"] = pkt.ttl
    else:
        rebuilt = IPv6(raw(fresh))
        out["ip_chksum_ok"] = True
        out["hlim"] = pkt.hlim
        layers = []
        layer = pkt.payload
        while layer is not None and not isinstance(layer, TCP):
            layers.append(type(layer).__name__)
            layer = layer.payload
        out["ext"] = layers
    out["tcp_chksum_ok"] = rebuilt[TCP].chksum == tcp.chksum
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
