"""Read a TensorFlow "V2" checkpoint (tf.train.Saver since TF 0.12, tf.train.Checkpoint) without TF.

A checkpoint is a prefix P with two kinds of files (tensorflow/core/util/tensor_bundle):

  P.index                 a LevelDB-format table (tensorflow/core/lib/io/table): sorted keys ->
                          serialized `BundleEntryProto`, plus the header entry under the empty key
                          (a `BundleHeaderProto`: number of shards, endianness). Blocks end in a
                          1-byte compression type (0 = none; TF writes bundles uncompressed) and a
                          masked crc32c of the block and that byte.
  P.data-SSSSS-of-NNNNN   shard SSSSS: each tensor's raw bytes at (shard_id, offset, size), in
                          row-major order, little-endian unless the header says otherwise; string
                          tensors as varint lengths, a 4-byte checksum, then the bytes.

plus, in the checkpoint's directory, an optional text file `checkpoint` naming the newest prefix.
`read_checkpoint(prefix)` returns {name: np.ndarray}. Every block's crc32c and every tensor's crc32c
are checked (in numpy), so a damaged or half-downloaded file fails naming the
tensor rather than converting garbage. Partitioned variables (`slices`) and V1 checkpoints (one
file, no `.index`, before TF 0.12) are refused with a message saying so.
"""

from __future__ import annotations

import functools
import os
import re
import struct

import numpy as np

# ----------------------------------------------------------------------------------------------
# Errors.
# ----------------------------------------------------------------------------------------------


class CheckpointFilesMissing(FileNotFoundError):
    """A checkpoint's `.index` or `.data-*` file is not there; the message names each one."""


class CorruptCheckpoint(ValueError):
    """A checkpoint file is truncated, damaged, or in a form this reader does not handle."""


# ----------------------------------------------------------------------------------------------
# crc32c (Castagnoli), as TF masks it.
# ----------------------------------------------------------------------------------------------

_POLY = 0x82F63B78  # reflected Castagnoli polynomial


@functools.cache
def _table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


def _advance(register: int, data: bytes) -> int:
    """The raw crc register after `data` (no pre/post conditioning): the byte-at-a-time loop."""
    table = _table().tolist()
    for byte in data:
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register


_LANE = 1024  # bytes per lane of the vectorised crc


@functools.cache
def _zeros_operator() -> list[np.ndarray]:
    """Four byte-sliced tables of the linear map 'feed _LANE zero bytes to the register'."""
    table = _table()
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    for _ in range(_LANE):
        basis = table[basis & 0xFF] ^ (basis >> 8)
    slices = []
    for j in range(4):
        values = np.zeros(256, np.uint32)
        for bit in range(8):
            values ^= np.where((np.arange(256) >> bit) & 1, basis[8 * j + bit], 0).astype(np.uint32)
        slices.append(values)
    return slices


def crc32c(data: bytes | memoryview) -> int:
    """CRC-32C of `data`; long inputs run as 1 KiB lanes in numpy, joined by crc32_combine."""
    data = memoryview(data).cast("B")
    lanes = len(data) // _LANE
    if lanes < 2:
        return _advance(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    table = _table()
    block = np.frombuffer(data[: lanes * _LANE], np.uint8).reshape(lanes, _LANE)
    register = np.full(lanes, 0xFFFFFFFF, np.uint32)
    for j in range(_LANE):
        register = table[(register ^ block[:, j]) & 0xFF] ^ (register >> 8)
    lane_crcs = (register ^ np.uint32(0xFFFFFFFF)).tolist()
    z0, z1, z2, z3 = (s.tolist() for s in _zeros_operator())
    # crc(A || B) = Z_len(B)(crc(A)) ^ crc(B), Z the zero-feeding operator (zlib crc32_combine).
    crc = lane_crcs[0]
    for lane_crc in lane_crcs[1:]:
        crc = z0[crc & 0xFF] ^ z1[(crc >> 8) & 0xFF] ^ z2[(crc >> 16) & 0xFF] ^ z3[crc >> 24]
        crc ^= lane_crc
    tail = data[lanes * _LANE :]
    return _advance(crc ^ 0xFFFFFFFF, tail) ^ 0xFFFFFFFF


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """tensorflow/core/lib/hash/crc32c.h: masked = rotate_right(crc, 15) + 0xa282ead8."""
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# Protocol buffers: the few fields of tensor_bundle.proto / tensor_shape.proto read here.
# ----------------------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CorruptCheckpoint("a varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(message: bytes) -> dict[int, list]:
    """field number -> values (ints for varint/fixed, bytes for length-delimited)."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 1:
            (value,), pos = struct.unpack_from("<Q", message, pos), pos + 8
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = bytes(message[pos : pos + length]), pos + length
        elif wire == 5:
            (value,), pos = struct.unpack_from("<I", message, pos), pos + 4
        else:
            raise CorruptCheckpoint(f"unsupported protobuf wire type {wire} (field {number})")
        fields.setdefault(number, []).append(value)
    return fields


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# tensorflow/core/framework/types.proto DataType -> numpy (little-endian).
_DTYPES = {
    1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 8: "<c8", 9: "<i8", 10: "?",
    17: "<u2", 18: "<c16", 19: "<f2", 22: "<u4", 23: "<u8",
}  # fmt: skip
_DT_STRING, _DT_BFLOAT16 = 7, 14


def _numpy_dtype(code: int, name: str) -> np.dtype | None:
    if code == _DT_BFLOAT16:
        import ml_dtypes  # a dependency of jax

        return np.dtype(ml_dtypes.bfloat16)
    if code in _DTYPES:
        return np.dtype(_DTYPES[code])
    if code == _DT_STRING:
        return None
    raise CorruptCheckpoint(f"tensor {name!r}: TF DataType {code} is not supported by this reader")


class _Entry:
    """A decoded BundleEntryProto."""

    def __init__(self, name: str, value: bytes):
        f = _fields(value)
        if 7 in f:
            raise CorruptCheckpoint(
                f"tensor {name!r} is a partitioned variable (slices); this reader handles only "
                f"whole tensors. Re-save it unpartitioned with TensorFlow."
            )
        self.name = name
        self.dtype = f.get(1, [0])[0]
        shape = _fields(f[2][0]) if 2 in f else {}
        self.shape = tuple(_int64(_fields(d).get(1, [0])[0]) for d in shape.get(2, []))
        self.shard = f.get(3, [0])[0]
        self.offset = _int64(f.get(4, [0])[0])
        self.size = _int64(f.get(5, [0])[0])
        self.crc = f.get(6, [None])[0]


# ----------------------------------------------------------------------------------------------
# The table (LevelDB format) of the .index file.
# ----------------------------------------------------------------------------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48  # two BlockHandles padded to 40 bytes, then the 8-byte magic number


def _block(index: bytes, handle: bytes, path: str) -> bytes:
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + 5 > len(index):
        raise CorruptCheckpoint(f"{path}: a block runs past the end of the file (truncated?)")
    contents, kind = index[offset : offset + size], index[offset + size]
    (masked,) = struct.unpack_from("<I", index, offset + size + 1)
    if crc32c(index[offset : offset + size + 1]) != unmask(masked):
        raise CorruptCheckpoint(f"{path}: the block at byte {offset} fails its crc32c (damaged)")
    if kind == 1:
        raise CorruptCheckpoint(
            f"{path}: the block at byte {offset} is snappy-compressed, which TF never does for "
            f"checkpoints and this reader does not decode; re-save the checkpoint with TensorFlow."
        )
    if kind != 0:
        raise CorruptCheckpoint(f"{path}: unknown block compression type {kind}")
    return contents


def _block_entries(block: bytes, path: str):
    """(key, value) pairs of one block: prefix-compressed keys, then the restart array."""
    if len(block) < 4:
        raise CorruptCheckpoint(f"{path}: a block of {len(block)} bytes")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 * (1 + restarts)
    key, pos = b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + length]
        pos += length


def _table_entries(path: str):
    with open(path, "rb") as f:
        index = f.read()
    if len(index) < _FOOTER:
        raise CorruptCheckpoint(f"{path}: {len(index)} bytes, too short for a checkpoint index")
    footer = index[-_FOOTER:]
    if struct.unpack_from("<Q", footer, _FOOTER - 8)[0] != _TABLE_MAGIC:
        raise CorruptCheckpoint(
            f"{path}: not a TensorFlow checkpoint index (bad magic number; truncated or another "
            f"file)."
        )
    _, pos = _varint(footer, _varint(footer, 0)[1])  # skip the metaindex handle
    index_handle = footer[pos:]
    for _, handle in _block_entries(_block(index, index_handle, path), path):
        yield from _block_entries(_block(index, handle, path), path)


# ----------------------------------------------------------------------------------------------
# Prefixes and the public readers.
# ----------------------------------------------------------------------------------------------


def resolve_prefix(path: str) -> str:
    """A checkpoint prefix from a prefix, its `.index` file, or a directory (its `checkpoint`
    file's newest prefix, else its only `*.index`). Raises CheckpointFilesMissing."""
    path = os.fspath(path)
    if path.endswith(".index"):
        path = path[: -len(".index")]
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        if os.path.isfile(state):
            text = open(state, encoding="utf-8").read()
            found = re.search(r'^model_checkpoint_path:\s*"(.*)"', text, re.M)
            if found:
                named = found.group(1)
                # Released checkpoints often name the author's absolute path: look beside the file.
                for candidate in (
                    os.path.join(path, named),
                    os.path.join(path, os.path.basename(named)),
                ):
                    if os.path.isfile(candidate + ".index"):
                        return candidate
        indexes = sorted(n[: -len(".index")] for n in os.listdir(path) if n.endswith(".index"))
        if len(indexes) == 1:
            return os.path.join(path, indexes[0])
        raise CheckpointFilesMissing(
            f"{path}: a directory with "
            + (
                f"several checkpoints ({', '.join(indexes)}); pass one prefix"
                if indexes
                else "no TensorFlow checkpoint (no *.index file)"
            )
        )
    if not os.path.isfile(path + ".index"):
        if os.path.isfile(path):
            raise CorruptCheckpoint(
                f"{path} exists but {path}.index does not: a TF V1 checkpoint (one file, before "
                f"TF 0.12) or not a checkpoint. Re-save it with TensorFlow as a V2 checkpoint."
            )
        raise CheckpointFilesMissing(f"TF checkpoint {path}: {path}.index does not exist")
    return path


def _read_entries(prefix: str) -> tuple[dict, dict[str, _Entry]]:
    header, entries = None, {}
    for key, value in _table_entries(prefix + ".index"):
        if key == b"":
            header = _fields(value)
        else:
            name = key.decode("utf-8")
            entries[name] = _Entry(name, value)
    if header is None:
        raise CorruptCheckpoint(f"{prefix}.index has no header entry (not a tensor bundle)")
    return header, entries


def list_checkpoint(prefix: str) -> dict[str, tuple[np.dtype | str, tuple[int, ...]]]:
    """{name: (numpy dtype or 'string', shape)} from the index alone (no data read)."""
    prefix = resolve_prefix(prefix)
    _, entries = _read_entries(prefix)
    listed = {}
    for name, e in sorted(entries.items()):
        try:
            dtype = _numpy_dtype(e.dtype, name) or "string"
        except CorruptCheckpoint:  # listed all the same: only reading it fails
            dtype = f"DataType {e.dtype}"
        listed[name] = (dtype, e.shape)
    return listed


def _string_tensor(buf: memoryview, count: int, entry_crc: int | None, where: str) -> np.ndarray:
    """tensor_bundle.cc WriteStringTensor: varint64 lengths, the masked crc32c of the lengths as
    fixed-width integers, then the bytes; the entry's crc32c covers (those lengths, that checksum,
    the bytes)."""
    raw, pos, lengths = bytes(buf), 0, []
    for _ in range(count):
        length, pos = _varint(raw, pos)
        lengths.append(length)
    # Checksummed as uint32 when they fit (what older TF wrote), else uint64.
    fixed = b"".join(struct.pack("<I" if n <= 0xFFFFFFFF else "<Q", n) for n in lengths)
    checksum, pos = raw[pos : pos + 4], pos + 4
    values = np.empty(count, dtype=object)
    for i, length in enumerate(lengths):
        values[i], pos = raw[pos : pos + length], pos + length
    if pos != len(raw):
        raise CorruptCheckpoint(f"{where}: its string data has the wrong length (truncated?)")
    whole = fixed + checksum + b"".join(values)
    lengths_ok = struct.unpack("<I", checksum)[0] == _mask(crc32c(fixed))
    if not lengths_ok or (entry_crc is not None and crc32c(whole) != unmask(entry_crc)):
        raise CorruptCheckpoint(f"{where}: its bytes fail their crc32c (damaged file)")
    return values


def read_checkpoint(prefix: str, names=None) -> dict[str, np.ndarray]:
    """{tensor name: array} of the checkpoint at `prefix` (or only `names`), checked by crc32c.

    `prefix`: what tf.train.Saver was given (`dir/wgan-gp.model-4000`), that plus `.index`, or a
    directory (see `resolve_prefix`). Raises CheckpointFilesMissing naming the missing files, and
    CorruptCheckpoint naming the tensor and file for anything truncated or damaged.
    """
    prefix = resolve_prefix(prefix)
    header, entries = _read_entries(prefix)
    num_shards = header.get(1, [1])[0]
    big_endian = header.get(2, [0])[0] == 1
    if names is not None:
        unknown = sorted(set(names) - set(entries))
        if unknown:
            raise KeyError(f"{prefix}: no tensors {unknown}")
        entries = {n: entries[n] for n in names}
    shards = {e.shard for e in entries.values() if e.size}
    paths = {s: f"{prefix}.data-{s:05d}-of-{num_shards:05d}" for s in shards}
    missing = sorted(p for p in paths.values() if not os.path.isfile(p))
    if missing:
        raise CheckpointFilesMissing(f"TF checkpoint {prefix}: missing {', '.join(missing)}")
    data = {}
    for s, path in paths.items():
        with open(path, "rb") as f:
            data[s] = memoryview(f.read())
    tensors = {}
    for name, e in sorted(entries.items()):
        dtype = _numpy_dtype(e.dtype, name)
        count = int(np.prod(e.shape, dtype=np.int64))
        buf = data[e.shard][e.offset : e.offset + e.size] if e.size else memoryview(b"")
        where = f"tensor {name!r} in {paths.get(e.shard, prefix)}"
        if len(buf) != e.size:
            raise CorruptCheckpoint(
                f"{where}: needs bytes {e.offset}..{e.offset + e.size}, the file has "
                f"{len(data[e.shard])} (truncated)"
            )
        if dtype is None:
            tensors[name] = _string_tensor(buf, count, e.crc, where).reshape(e.shape)
            continue
        if e.crc is not None and crc32c(buf) != unmask(e.crc):
            raise CorruptCheckpoint(f"{where}: its bytes fail their crc32c (damaged file)")
        if e.size != count * dtype.itemsize:
            raise CorruptCheckpoint(
                f"{where}: {e.size} bytes for shape {e.shape} of {dtype} (expected "
                f"{count * dtype.itemsize})"
            )
        array = np.frombuffer(buf, dtype.newbyteorder(">") if big_endian else dtype, count)
        tensors[name] = array.astype(dtype.newbyteorder("=")).reshape(e.shape)
    return tensors
