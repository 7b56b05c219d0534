#!/usr/bin/env python3
"""Copies a GGUF file, adding VALUE to the first K values of every row of the F32 tensors whose names contain PATTERN
(standard library only).

    bench/edit-tensors.py IN.gguf OUT.gguf PATTERN K VALUE

check-llamacpp.sh uses it to pin gpt-oss-tiny's routing (PATTERN ffn_gate_inp.bias, K 4, VALUE 8): the first four
experts then win the top-4 of 8 for every token, so no choice of experts can flip on a float rounding difference,
while the softmax weights among them still follow the router logits.
"""
import array, shutil, struct, sys

src, dst, pattern, first, add = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
shutil.copyfile(src, dst)
with open(dst, 'r+b') as f:
    def u32(): return struct.unpack('<I', f.read(4))[0]
    def u64(): return struct.unpack('<Q', f.read(8))[0]
    def string(): return f.read(u64()).decode()
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    alignment = 32
    def value(t, key=None):
        global alignment
        if t == 8: return string()
        if t == 9:
            et, n = u32(), u64()
            for _ in range(n): value(et)
            return None
        raw = f.read(sizes[t])
        if key == 'general.alignment': alignment = struct.unpack('<I', raw)[0]
        return raw
    if f.read(4) != b'GGUF': sys.exit(f'{src}: not a GGUF file')
    u32(); n_tensors, n_kv = u64(), u64()
    for _ in range(n_kv):
        key = string(); value(u32(), key)
    tensors = []
    for _ in range(n_tensors):
        name = string(); dims = [u64() for _ in range(u32())]; ggml_type = u32(); offset = u64()
        tensors.append((name, dims, ggml_type, offset))
    data = (f.tell() + alignment - 1) // alignment * alignment
    scaled = 0
    for name, dims, ggml_type, offset in tensors:
        if pattern not in name: continue
        if ggml_type != 0: sys.exit(f'{name} is not F32 (type {ggml_type})')
        count = 1
        for d in dims: count *= d
        f.seek(data + offset)
        values = array.array('f'); values.frombytes(f.read(4 * count))
        for row in range(0, count, dims[0]):
            for i in range(row, row + min(first, dims[0])): values[i] += add
        f.seek(data + offset); f.write(values.tobytes()); scaled += 1
    print(f'edited {scaled} tensors matching {pattern!r} into {dst}', file=sys.stderr)
