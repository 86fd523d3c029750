"""Run by the Dockerfile in a root that holds nothing but the image's own tree (chroot).

If wharfie starts there, imports every module an in-place build needs
(builder/engine/inplace_stage.py's PRELOADED_MODULES, native extensions
included) and trusts the CA bundle, it needs nothing outside /wharfie.
"""

import ctypes.util
import importlib
import ssl
import sys

from builder.engine.inplace_stage import PRELOADED_MODULES

# The sandbox's side too: what builder/execution/sandbox.py starts in the step's namespaces.
MODULES = (*PRELOADED_MODULES, "builder.execution.sandbox_enter", "builder.execution.userns")

failures = []
for name, soname in (("c", "libc.so.6"), ("seccomp", "libseccomp.so.2")):
    if ctypes.util.find_library(name) != soname:
        failures.append(f"ctypes finds {soname} as {ctypes.util.find_library(name)!r}, not in /wharfie/lib")
for name in MODULES:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failures.append(f"{name}: {exc}")
if sys.prefix != "/wharfie" or sys.executable != "/wharfie/bin/python3":
    failures.append(f"prefix {sys.prefix}, executable {sys.executable}: not /wharfie's")
authorities = ssl.create_default_context().cert_store_stats()["x509_ca"]
if authorities < 50:
    failures.append(f"only {authorities} certificate authorities trusted")
if failures:
    sys.exit("selfcheck: " + "; ".join(failures))
print(f"selfcheck: wharfie runs from /wharfie alone ({len(MODULES)} modules, {authorities} CAs)")
