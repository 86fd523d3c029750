"""Run by the Dockerfile in a root that holds nothing but the image's own tree (chroot).

If wharfie starts there, imports every module an in-place build needs
(builder/engine/inplace_stage.py's PRELOADED_MODULES, native extensions
included) and trusts the CA bundle, it needs nothing outside /wharfie.
"""

import importlib
import ssl
import sys

from builder.engine.inplace_stage import PRELOADED_MODULES

failures = []
for name in PRELOADED_MODULES:
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
print(f"selfcheck: wharfie runs from /wharfie alone ({len(PRELOADED_MODULES)} modules, {authorities} CAs)")
