#!/usr/bin/env python3
"""Contender "per-VID netlink": what Incus and the CNI bridge plugin do, in Python with
pyroute2 — one RTM_SETLINK/RTM_DELLINK request per VID, each waiting for its ack.

    pyroute2_per_vid.py SPEC.json [--limit N]

SPEC: {"ports": {"<port>": {"del": [vid, ...], "add": [[vid, pvid, untagged], ...]}}}.
--limit N sends only the first N requests (the harness extrapolates per-request cost for
runs that would take hours under emulation, and says so).
"""
import json
import sys

from pyroute2 import IPRoute

PVID, UNTAGGED = 0x2, 0x4


def main():
    spec = json.load(open(sys.argv[1]))
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    sent = 0
    with IPRoute() as ipr:
        index = {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}
        for port, work in spec["ports"].items():
            idx = index[port]
            for vid in work.get("del", []):
                if limit is not None and sent >= limit:
                    return sent
                ipr.vlan_filter("del", index=idx, vlan_info={"vid": vid, "flags": 0})
                sent += 1
            for vid, pvid, untagged in work.get("add", []):
                if limit is not None and sent >= limit:
                    return sent
                flags = (PVID if pvid else 0) | (UNTAGGED if untagged else 0)
                ipr.vlan_filter("add", index=idx, vlan_info={"vid": vid, "flags": flags})
                sent += 1
    return sent


if __name__ == "__main__":
    print(main())
