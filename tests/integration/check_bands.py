#!/usr/bin/env python3
"""Every integration script's 127.NET.0.0/16 band is its own: no two scripts share a NET.

ctest runs the integration scripts side by side (-j), so two scripts whose bands overlap can pick
the same range or DNS port and fail (or worse, talk to each other's farm). A band is declared by
two literal numbers after pick_net, in_band, farm_in_band or launch (tests/integration/lib.sh),
or by a literal 127.NET. address in the code (a script with fixed addresses). This check reads
every *.sh and *.py under tests/integration, so scripts added later are checked too, and fails on:
  - two scripts whose bands overlap (each pair is named);
  - a band outside 2..254, or with LO > HI;
  - a band helper called without two literal numbers (the band could not be checked);
  - a script that starts a farm (start_farm, or mxfarm with --base-ip) and declares no band;
  - a script that still sources the old tests/integration/mxfarm/lib.sh.
Usage: check_bands.py [DIR] (default: the folder of this file). Exit 0 when disjoint.
"""
import os
import re
import sys

HELPERS = ("pick_net", "in_band", "farm_in_band", "launch")
CALL = re.compile(r"(?<![\w-])(" + "|".join(HELPERS) + r")\b(.*)")
LITERAL = re.compile(r"^\s+(\d+)\s+(\d+)(?!\S)")
FIXED = re.compile(r"(?<![\d.])127\.(\d{1,3})\.(?=\d|\{|x)")
STARTS_FARM = re.compile(r"\bstart_farm\b|--base-ip")
LO_MIN, HI_MAX = 2, 254


def scan(path):
    """(bands, errors): bands as (lo, hi, line number); errors as strings."""
    bands, errors = [], []
    starts = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            code = line.strip()
            if code.startswith("#"):
                continue
            if STARTS_FARM.search(code):
                starts = True
            if "mxfarm/lib.sh" in code:
                errors.append(f"{path}:{n}: lib.sh is tests/integration/lib.sh now: "
                              'source "$(dirname "$0")/../lib.sh"')
            for m in CALL.finditer(line):
                rest = m.group(2)
                if rest.startswith("()"):  # the function's own definition
                    continue
                lit = LITERAL.match(rest)
                if not lit:
                    errors.append(f"{path}:{n}: {m.group(1)} without a literal band (LO HI): "
                                  f"{code}")
                    continue
                bands.append((int(lit.group(1)), int(lit.group(2)), n))
            for m in FIXED.finditer(code):
                net = int(m.group(1))
                if net != 0:
                    bands.append((net, net, n))
    for lo, hi, n in bands:
        if not (LO_MIN <= lo <= hi <= HI_MAX):
            errors.append(f"{path}:{n}: band {lo}-{hi} is not within {LO_MIN}..{HI_MAX} "
                          "with LO <= HI")
    if starts and not bands:
        errors.append(f"{path}: starts a farm but declares no band (use pick_net/in_band/"
                      "farm_in_band/launch LO HI from tests/integration/lib.sh)")
    return bands, errors


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__))
    lib = os.path.join(root, "lib.sh")
    owners = {}  # NET -> [(script, line)]
    errors, scripts = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "node_modules"))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not name.endswith((".sh", ".py")) or path == lib or name == "check_bands.py":
                continue
            bands, errs = scan(path)
            errors += errs
            rel = os.path.relpath(path, root)
            if bands:
                scripts += 1
            for lo, hi, n in bands:
                for net in range(max(lo, LO_MIN), min(hi, HI_MAX) + 1):
                    owners.setdefault(net, []).append((rel, n, lo, hi))
    pairs = {}
    for net, users in sorted(owners.items()):
        files = sorted({u[0] for u in users})
        if len(files) > 1:
            key = tuple(files)
            pairs.setdefault(key, {"nets": [], "users": users})["nets"].append(net)
    for files, info in pairs.items():
        decl = sorted({f"{u[0]}:{u[1]} ({u[2]}-{u[3]})" for u in info["users"]})
        nets = info["nets"]
        errors.append(f"bands overlap on 127.{nets[0]}-{nets[-1]}: " + ", ".join(decl))
    for e in errors:
        print("FAIL:", e)
    if errors:
        return 1
    used = sorted(owners)
    print(f"{scripts} scripts, {len(used)} of {HI_MAX - LO_MIN + 1} nets in use, bands disjoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
