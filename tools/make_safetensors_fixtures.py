#!/usr/bin/env python3
"""Writes the safetensors fixtures of tests/test_safetensors.cpp with the Python library.

    pip install safetensors numpy   # made with safetensors 0.8.0, numpy 2.4
    python3 tools/make_safetensors_fixtures.py

The outputs are committed, so the tests need no Python. Every value here is repeated in the
test; change both together.
"""
import pathlib

import numpy as np
import safetensors

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "safetensors"

# numpy has no bfloat16 or float8: those tensors are given as raw bits with the library's name.
RAW_DTYPE_NAMES = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn"}


def serialize(tensors, metadata):
    """tensors: name -> numpy array, or (stored dtype, shape, raw numpy array)."""
    keep_alive = []
    specs = {}
    for name, value in tensors.items():
        if isinstance(value, tuple):
            stored, shape, raw = value
            dtype_name = RAW_DTYPE_NAMES[stored]
        else:
            shape, raw, dtype_name = value.shape, value, value.dtype.name
        raw = np.ascontiguousarray(raw)
        keep_alive.append(raw)
        if hasattr(safetensors, "TensorSpec"):  # safetensors >= 0.8
            specs[name] = safetensors.TensorSpec(dtype=dtype_name, shape=list(shape),
                                                 data_ptr=raw.ctypes.data, data_len=raw.nbytes)
        else:
            specs[name] = {"dtype": dtype_name, "shape": list(shape), "data": raw.tobytes()}
    return bytes(safetensors.serialize(specs, metadata=metadata))


def all_dtypes():
    """Every dtype ft reads (and one it does not), with edge values; metadata as PyTorch writes."""
    return {
        "a.f32": np.array([[-1.5, 0.0, 0.1], [3.25, -0.0, 1e30]], np.float32),
        "b.f64": np.array([1 / 3, -2.5, 1e300, 5e-324], np.float64),
        # 1, -2, inf, the smallest subnormal, -0, 3.140625
        "c.bf16": ("BF16", (3, 2), np.array([0x3F80, 0xC000, 0x7F80, 0x0001, 0x8000, 0x4049],
                                            np.uint16)),
        # 1, -2.5, the largest half, the smallest subnormal half (2^-24), -inf
        "d.f16": np.array([1.0, -2.5, 65504.0, 2.0**-24, -np.inf], np.float16),
        "e.i64": np.array([-5, 0, 2147483647], np.int64),
        "f.i32": np.array([[-2147483648, -1], [0, 7]], np.int32),
        "g.scalar": np.array(4.5, np.float32),
        "h.one": np.array([-7.0], np.float32),
        "i.empty": np.zeros((0, 4), np.float32),
        "j.u8": np.array([0, 255], np.uint8),
        "k.i16": np.array([-32768, 32767], np.int16),
        "l.bool": np.array([True, False, True]),
        "m.i64_big": np.array([1, 2**40], np.int64),
        "n.f8": ("F8_E4M3", (2,), np.array([0x38, 0xC0], np.uint8)),
        "o.u32": np.array([4294967295], np.uint32),
    }


def writer_reference():
    """Only what ft's writer writes (F32, F64, BF16, I32), with values the test recomputes."""
    return {
        "model.layers.0.mlp.up_proj.weight":
            ((np.arange(12, dtype=np.float32) - 5) * 0.375).reshape(3, 4),
        "lm_head.weight": ("BF16", (2, 3), 0x3F00 + 37 * np.arange(6, dtype=np.uint16)),
        "scale": 1.0 / (np.arange(5, dtype=np.float64) + 1),
        "ids": np.arange(4, dtype=np.int32) ** 2 * 1000 - 7,
        "\u00e9.scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "one": np.array([-1], np.int32),
        "z.bias": ("BF16", (4,), 0xBF00 + 3 * np.arange(4, dtype=np.uint16)),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    files = {
        "python_all_dtypes.safetensors": serialize(all_dtypes(), {"format": "pt"}),
        # One metadata key only: the library orders several keys by hash, not reproducibly.
        "python_writer_reference.safetensors": serialize(
            writer_reference(), {"note": "tab\t quote\" backslash\\ slash/ \u00e9 ctl\x01 del\x7f"}),
    }
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"wrote {OUT / name} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
