#!/usr/bin/env python3
"""Contender "Python hook": the same job as `virt-vlan hook qemu DOM start begin -`, the way
the seeds' hooks do it (kvmvlan, the portgroup hook): Python with pyroute2. Reads the domain
XML on stdin, takes each interface's VLANs from urn:virt-vlan:1 metadata or the portgroup
name convention (`dmz-4`), checks them against the bridge's `allowed`, reads the taps' VLANs
and applies the difference one VID per request, as kvmvlan's manage_vlans() does.

    hook.py CONFIG.toml NETWORKS_DIR < domain.xml
"""
import os
import re
import sys
import tomllib
import xml.etree.ElementTree as ET

from pyroute2 import IPRoute

NS = "{urn:virt-vlan:1}"
PVID, UNTAGGED = 0x2, 0x4


def vid_set(text):
    out = set()
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        a, _, b = item.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def parse_vlan(vlan):
    """libvirt's <vlan> grammar -> (pvid, untagged set, tagged set)."""
    tags = [(int(t.get("id")), t.get("nativeMode")) for t in vlan if t.tag.endswith("tag")]
    if not tags or any(not 1 <= v <= 4094 for v, _ in tags):
        raise ValueError("bad <vlan>")
    trunk = vlan.get("trunk") == "yes" or len(tags) > 1
    if not trunk:
        return tags[0][0], {tags[0][0]}, set()
    pvid, untagged, tagged = None, set(), set()
    for v, native in tags:
        if native == "untagged":
            pvid = v
            untagged.add(v)
        else:
            if native == "tagged":
                pvid = v
            tagged.add(v)
    return pvid, untagged, tagged


def main():
    config = tomllib.load(open(sys.argv[1], "rb"))
    networks = {}
    for f in os.listdir(sys.argv[2]):
        n = ET.parse(os.path.join(sys.argv[2], f)).getroot()
        networks[n.findtext("name")] = n
    dom = ET.fromstring(sys.stdin.read())
    meta = {}
    for iface in dom.iter(NS + "interface"):
        meta[iface.get("mac")] = parse_vlan(iface.find(NS + "vlan"))
    wanted = {}
    for iface in dom.find("devices").iter("interface"):
        mac = iface.find("mac").get("address")
        tap = iface.find("target").get("dev")
        src = iface.find("source")
        bridge = src.get("bridge")
        if mac in meta:
            wanted[tap] = (bridge, meta[mac])
            continue
        net = networks.get(src.get("network"))
        if net is None:
            continue
        pg = src.get("portgroup")
        if pg is None:
            pg = next((p.get("name") for p in net.iter("portgroup") if p.get("default") == "yes"), None)
        m = re.fullmatch(r".*-(\d+)", pg or "")
        if m:
            v = int(m.group(1))
            wanted[tap] = (bridge, (v, {v}, set()))
    for tap, (bridge, (pvid, untagged, tagged)) in wanted.items():
        allowed = vid_set(config["bridges"][bridge].get("allowed", "1-4094"))
        if not (untagged | tagged) <= allowed:
            sys.stderr.write(f"{tap}: VIDs not allowed\n")
            return 1
    with IPRoute() as ipr:
        index = {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}
        current = {}
        for msg in ipr.get_vlans():
            spec = msg.get_attr("IFLA_AF_SPEC")
            if spec is None:
                continue
            current[msg.get_attr("IFLA_IFNAME")] = {
                v["vid"]: v["flags"] for v in spec.get_attrs("IFLA_BRIDGE_VLAN_INFO")
            }
        for tap, (_, (pvid, untagged, tagged)) in wanted.items():
            idx = index[tap]
            want = {v: (PVID if v == pvid else 0) | UNTAGGED for v in untagged}
            want.update({v: (PVID if v == pvid else 0) for v in tagged})
            have = current.get(tap, {})
            for vid in have:
                if vid not in want:
                    ipr.vlan_filter("del", index=idx, vlan_info={"vid": vid, "flags": 0})
            for vid, flags in want.items():
                if have.get(vid) != flags:
                    ipr.vlan_filter("add", index=idx, vlan_info={"vid": vid, "flags": flags})
    return 0


if __name__ == "__main__":
    sys.exit(main())
