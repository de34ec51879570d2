"""Which BLAS library the running Python process mapped, for the PyTorch peers' reports (Debian's
torch links libblas.so.3, an alternative that points at one OpenBLAS flavour or another)."""

import os


def loaded_blas():
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.split()[-1]}
        return ", ".join(sorted(os.path.realpath(p) for p in paths)) or "none found"
    except OSError:
        return "unknown"
