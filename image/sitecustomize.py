"""In wharfie's image, shared libraries are found in /wharfie/lib, and no program is run to find one.

`ctypes.util.find_library` (libseccomp's binding and the sandbox's libc use
it) runs /sbin/ldconfig, then gcc, cc or ld from PATH. In the image these are
absent, or, after an in-place build, the built image's programs, which
wharfie must never run. Python imports this module at start (site), before
any of wharfie's code; image/assemble.py installs it as the standard
library's sitecustomize.py.
"""

import ctypes.util
import os
import sys

_LIBRARIES = os.path.join(sys.prefix, "lib")


def find_library(name: str) -> str | None:
    """The soname of `libNAME.so*` in /wharfie/lib (what the loader will find there), or None."""
    stem = f"lib{name}.so"
    try:
        names = sorted(n for n in os.listdir(_LIBRARIES) if n == stem or n.startswith(stem + "."))
    except OSError:
        return None
    return min(names, key=len) if names else None


ctypes.util.find_library = find_library
