#!/usr/bin/env python3
"""Cuts a TrueType font down to the characters the console draws and writes it as a C++ array.

The console embeds DejaVu Sans and Sans Mono (Debian's fonts-dejavu-core) in the wasm; whole,
they would weigh 1.1 MB. Glyph ids are kept (so no table needs remapping): glyphs not wanted
become empty, their metrics zero, and only the tables stb_truetype reads are written (cmap with
one format 4 subtable, glyf, head, hhea, hmtx, loca, maxp).

usage: subset_font.py OUT.inc NAME FONT.ttf [NAME FONT.ttf ...]
"""
import struct
import sys

# Printable ASCII and Latin-1, the ellipsis, arrows, a bullet.
WANTED = list(range(0x20, 0x7F)) + list(range(0xA0, 0x100)) + [0x2026, 0x2190, 0x2191, 0x2192,
                                                               0x2193, 0x25CF]


def tables_of(data):
    num = struct.unpack_from(">H", data, 4)[0]
    out = {}
    for i in range(num):
        tag, _, off, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        out[tag.decode("latin-1")] = data[off:off + length]
    return out


def cmap_format4(cmap):
    """char -> glyph id from the (3,1) or (0,x) format 4 subtable."""
    n = struct.unpack_from(">H", cmap, 2)[0]
    for i in range(n):
        plat, enc, off = struct.unpack_from(">HHI", cmap, 4 + 8 * i)
        if struct.unpack_from(">H", cmap, off)[0] != 4 or (plat, enc) not in ((3, 1), (0, 3)):
            continue
        segx2 = struct.unpack_from(">H", cmap, off + 6)[0]
        seg = segx2 // 2
        ends = struct.unpack_from(">%dH" % seg, cmap, off + 14)
        starts = struct.unpack_from(">%dH" % seg, cmap, off + 16 + segx2)
        deltas = struct.unpack_from(">%dh" % seg, cmap, off + 16 + 2 * segx2)
        ro_pos = off + 16 + 3 * segx2
        ranges = struct.unpack_from(">%dH" % seg, cmap, ro_pos)
        mapping = {}
        for s in range(seg):
            for c in range(starts[s], ends[s] + 1):
                if c == 0xFFFF:
                    continue
                if ranges[s] == 0:
                    g = (c + deltas[s]) & 0xFFFF
                else:
                    p = ro_pos + 2 * s + ranges[s] + 2 * (c - starts[s])
                    g = struct.unpack_from(">H", cmap, p)[0]
                    if g:
                        g = (g + deltas[s]) & 0xFFFF
                if g:
                    mapping[c] = g
        return mapping
    raise SystemExit("no format 4 cmap subtable")


def components(glyph):
    """Glyph ids a composite glyph is built from."""
    if len(glyph) < 10 or struct.unpack_from(">h", glyph, 0)[0] >= 0:
        return []
    out, pos = [], 10
    while True:
        flags, gid = struct.unpack_from(">HH", glyph, pos)
        out.append(gid)
        pos += 4 + (4 if flags & 0x0001 else 2)
        if flags & 0x0008:
            pos += 2
        elif flags & 0x0040:
            pos += 4
        elif flags & 0x0080:
            pos += 8
        if not flags & 0x0020:
            return out


def checksum(b):
    b = b + b"\0" * (-len(b) % 4)
    return sum(struct.unpack(">%dI" % (len(b) // 4), b)) & 0xFFFFFFFF


def subset(data):
    t = tables_of(data)
    head, maxp, hhea = bytearray(t["head"]), t["maxp"], t["hhea"]
    num_glyphs = struct.unpack_from(">H", maxp, 4)[0]
    long_loca = struct.unpack_from(">h", head, 50)[0] == 1
    loca = (struct.unpack_from(">%dI" % (num_glyphs + 1), t["loca"]) if long_loca else
            [2 * x for x in struct.unpack_from(">%dH" % (num_glyphs + 1), t["loca"])])
    glyf = t["glyf"]
    glyph = lambda g: glyf[loca[g]:loca[g + 1]]
    mapping = {c: g for c, g in cmap_format4(t["cmap"]).items() if c in WANTED}
    keep, todo = {0}, list(mapping.values())
    while todo:
        g = todo.pop()
        if g in keep or g >= num_glyphs:
            continue
        keep.add(g)
        todo.extend(components(glyph(g)))
    new_glyf, new_loca = bytearray(), []
    for g in range(num_glyphs):
        new_loca.append(len(new_glyf))
        if g in keep:
            new_glyf += glyph(g)
            new_glyf += b"\0" * (-len(new_glyf) % 4)
    new_loca.append(len(new_glyf))
    struct.pack_into(">h", head, 50, 1)  # long loca
    struct.pack_into(">I", head, 8, 0)  # checksumAdjustment: not checked by stb_truetype
    n_hm = struct.unpack_from(">H", hhea, 34)[0]
    hmtx = bytearray(t["hmtx"])
    for g in range(num_glyphs):
        if g not in keep:
            if g < n_hm:
                struct.pack_into(">Hh", hmtx, 4 * g, 0, 0)
            else:
                struct.pack_into(">h", hmtx, 4 * n_hm + 2 * (g - n_hm), 0)
    chars = sorted(mapping)
    seg = len(chars) + 1
    ends = chars + [0xFFFF]
    deltas = [(mapping[c] - c) & 0xFFFF for c in chars] + [1]
    p2 = 1 << (seg.bit_length() - 1)  # binary-search fields (stb_truetype relies on them)
    sub = struct.pack(">HHHHHHH", 4, 0, 0, 2 * seg, 2 * p2, p2.bit_length() - 1, 2 * (seg - p2))
    sub += struct.pack(">%dH" % seg, *ends) + b"\0\0" + struct.pack(">%dH" % seg, *ends)
    sub += struct.pack(">%dH" % seg, *deltas) + struct.pack(">%dH" % seg, *([0] * seg))
    sub = sub[:2] + struct.pack(">H", len(sub)) + sub[4:]
    cmap = struct.pack(">HHHHI", 0, 1, 3, 1, 12) + sub
    out_tables = {
        "cmap": cmap, "glyf": bytes(new_glyf), "head": bytes(head), "hhea": hhea,
        "hmtx": bytes(hmtx), "loca": struct.pack(">%dI" % len(new_loca), *new_loca), "maxp": maxp,
    }
    tags = sorted(out_tables)
    pow2 = 1 << (len(tags).bit_length() - 1)
    out = bytearray(struct.pack(">IHHHH", 0x00010000, len(tags), 16 * pow2,
                                pow2.bit_length() - 1, 16 * (len(tags) - pow2)))
    offset = 12 + 16 * len(tags)
    body = bytearray()
    for tag in tags:
        b = out_tables[tag]
        out += struct.pack(">4sIII", tag.encode(), checksum(b), offset + len(body), len(b))
        body += b + b"\0" * (-len(b) % 4)
    return bytes(out + body)


def main():
    if len(sys.argv) < 4 or len(sys.argv) % 2:
        raise SystemExit(__doc__)
    lines = ["// Generated by admin-wasm/fonts/subset_font.py from Debian's fonts-dejavu-core.",
             "// DejaVu fonts: Bitstream Vera license (free to embed and redistribute).", ""]
    for name, path in zip(sys.argv[2::2], sys.argv[3::2]):
        data = subset(open(path, "rb").read())
        lines.append("static const unsigned char %s[%d] = {" % (name, len(data)))
        for i in range(0, len(data), 24):
            lines.append(",".join(str(x) for x in data[i:i + 24]) + ",")
        lines.append("};")
    open(sys.argv[1], "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
