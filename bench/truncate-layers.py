#!/usr/bin/env python3
"""Writes a GGUF that keeps only the first N transformer blocks of another one.

    bench/truncate-layers.py IN.gguf N OUT.gguf

Every block of a model has the same shapes, so a file cut to N of its L blocks runs each block exactly as the whole
model does; per-token time scales with the blocks kept (plus the embedding and output head, which stay whole). This
lets a shape too large for this machine's memory (Qwen3-30B-A3B at Q4_K_M is 18.5 GB, and a benchmark needs it
mapped by llama.cpp and by Sputnik side by side) be benchmarked at its real per-block sizes. Say so wherever a
result comes from a cut file.

Only `<arch>.block_count` changes in the metadata; tensors `blk.I.*` with I >= N are dropped; the data of the rest
is copied byte for byte, re-aligned. Standard library only.
"""
import struct
import sys

SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY, UINT32 = 8, 9, 4


class Reader:
    def __init__(self, f):
        self.f = f

    def take(self, n):
        data = self.f.read(n)
        if len(data) != n:
            sys.exit("error: file ends inside the header")
        return data

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        n = self.u64()
        if n > 1 << 20:
            sys.exit(f"error: string of {n} bytes in the header")
        return self.take(n)


def value_bytes(r, vtype):
    """Returns the raw bytes of one metadata value of type vtype (after its type field)."""
    if vtype in SCALAR_SIZES:
        return r.take(SCALAR_SIZES[vtype])
    if vtype == STRING:
        s = r.string()
        return struct.pack("<Q", len(s)) + s
    if vtype == ARRAY:
        etype, count = r.u32(), r.u64()
        parts = [struct.pack("<IQ", etype, count)]
        if etype in SCALAR_SIZES:
            parts.append(r.take(SCALAR_SIZES[etype] * count))
        else:
            parts.extend(value_bytes(r, etype) for _ in range(count))
        return b"".join(parts)
    sys.exit(f"error: unknown metadata type {vtype}")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    src, keep, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(src, "rb") as f:
        r = Reader(f)
        if r.take(4) != b"GGUF":
            sys.exit(f"error: {src} is not a GGUF file")
        version, n_tensors, n_kv = r.u32(), r.u64(), r.u64()
        kvs, alignment, arch = [], 32, None
        for _ in range(n_kv):
            key, vtype = r.string(), r.u32()
            raw = value_bytes(r, vtype)
            kvs.append([key, vtype, raw])
            if key == b"general.alignment":
                alignment = struct.unpack("<I", raw)[0]
            if key == b"general.architecture":
                arch = raw[8:]
        if arch is None:
            sys.exit("error: no general.architecture")
        count_key = arch + b".block_count"
        blocks = None
        for kv in kvs:
            if kv[0] == count_key and kv[1] == UINT32:
                blocks = struct.unpack("<I", kv[2])[0]
                kv[2] = struct.pack("<I", keep)
        if blocks is None or not 0 < keep <= blocks:
            sys.exit(f"error: cannot keep {keep} blocks of {blocks}")
        tensors = []
        for _ in range(n_tensors):
            name, n_dims = r.string(), r.u32()
            dims = [r.u64() for _ in range(n_dims)]
            ttype, offset = r.u32(), r.u64()
            tensors.append((name, dims, ttype, offset))
        data_start = (f.tell() + alignment - 1) // alignment * alignment
        f.seek(0, 2)
        data_len = f.tell() - data_start
        by_offset = sorted(tensors, key=lambda t: t[3])
        size = {}
        for i, t in enumerate(by_offset):
            end = by_offset[i + 1][3] if i + 1 < len(by_offset) else data_len
            size[t[0]] = end - t[3]

        def kept(name):
            parts = name.split(b".")
            return not (parts[0] == b"blk" and int(parts[1]) >= keep)

        out_tensors, offset = [], 0
        for name, dims, ttype, old in tensors:
            if kept(name):
                out_tensors.append((name, dims, ttype, old, offset))
                offset += (size[name] + alignment - 1) // alignment * alignment
        with open(dst, "wb") as o:
            o.write(b"GGUF" + struct.pack("<IQQ", version, len(out_tensors), len(kvs)))
            for key, vtype, raw in kvs:
                o.write(struct.pack("<Q", len(key)) + key + struct.pack("<I", vtype) + raw)
            for name, dims, ttype, _, new in out_tensors:
                o.write(struct.pack("<Q", len(name)) + name + struct.pack("<I", len(dims)))
                o.write(struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ttype, new))
            o.write(b"\0" * (-o.tell() % alignment))
            base = o.tell()
            for name, _, _, old, new in out_tensors:
                o.write(b"\0" * (base + new - o.tell()))
                f.seek(data_start + old)
                left = size[name]
                while left:
                    chunk = f.read(min(left, 64 << 20))
                    o.write(chunk)
                    left -= len(chunk)
    print(f"{dst}: {keep} of {blocks} blocks, {len(out_tensors)} of {n_tensors} tensors")


if __name__ == "__main__":
    main()
