"""Assemble wharfie's self-contained tree for its own image (run by the Dockerfile with the base's python3).

Usage: python3 assemble.py OUT
OUT/wharfie/lib/python3/dist-packages already holds wharfie and its packages
(pip --target). This adds everything else they need to run with nothing
outside OUT/wharfie, so that an in-place build may replace the rest of `/`:

  wharfie/libexec/   the base's Python interpreter and util-linux `unshare`, as they are
  wharfie/lib/       every shared library they and the extension modules load (found
                     with ldd), the dynamic loader itself, and Python's standard library
  wharfie/bin/       busybox-static and its applets (the job's shell and tools), and
                     wrappers that start the ELF programs through wharfie/lib's loader
  wharfie/etc/       the CA bundle, an OpenSSL config of its own, own-paths
and, for kaniko's users: kaniko/executor, kaniko/.docker/, kaniko/ssl/certs/, busybox -> wharfie/bin,
and an empty tmp/. image/README.md says why this route was chosen.
"""

from __future__ import annotations

import compileall
import py_compile
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

HOME = Path("/wharfie")  # where the tree lives in the image; OUT/wharfie here
PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"
# Parts of the standard library wharfie never imports: tests, GUIs, the REPL's helpers.
STDLIB_LEFT_OUT = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "venv",
                   "distutils", "sqlite3", "curses", "dbm", "EXTERNALLY-MANAGED")
DYNLOAD_LEFT_OUT = re.compile(r"^(_test|_xx|xx|_ctypes_test|_sqlite3|_curses|readline|_dbm|_gdbm|_tkinter|nis|"
                              r"ossaudiodev|audioop|_crypt)")
# Libraries Python packages open by name at run time (ctypes): ldd cannot see them. Copied when the base
# has them; found there by image/sitecustomize.py.
LOADED_BY_NAME = ("libseccomp.so.2",)
# The paths outside /wharfie that the image owns too: in-place builds keep them (builder/execution/inplace.py).
OWN_PATHS = ("/kaniko", "/busybox")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
OPENSSL_CNF = """\
# wharfie's own OpenSSL configuration: in place, / may hold the built image's,
# and nothing from the image being built may configure wharfie's TLS.
openssl_conf = openssl_init
[openssl_init]
"""


def copy_stdlib(prefix: Path) -> None:
    source = Path(sysconfig.get_path("stdlib"))
    target = prefix / "lib" / PYTHON

    def ignore(directory: str, names: list[str]) -> set[str]:
        if Path(directory) == source:
            return {n for n in names if n in STDLIB_LEFT_OUT or n.startswith("config-") or n == "site-packages"}
        if Path(directory).name == "lib-dynload":
            return {n for n in names if DYNLOAD_LEFT_OUT.match(n)}
        return {"__pycache__"} & set(names)  # compiled afresh below, against the copied sources

    # Symlinks followed: Debian's sitecustomize.py points into /etc (and is replaced by wharfie's).
    shutil.copytree(source, target, symlinks=False, ignore=ignore)
    shutil.copyfile(Path(__file__).with_name("sitecustomize.py"), target / "sitecustomize.py")


def elf_files(roots: Iterable[Path]) -> list[Path]:
    found = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        for path in paths:
            with open(path, "rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    found.append(path)
    return found


_LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)$")


def needed_libraries(objects: Iterable[Path], inside: Path) -> tuple[dict[str, Path], Path]:
    """The shared libraries the objects load (by the name they are asked for), and the dynamic loader.

    Libraries already under `inside` (auditwheel's bundles next to a wheel's modules) stay where they are.
    """
    libraries: dict[str, Path] = {}
    loader: Path | None = None
    for obj in objects:
        done = subprocess.run(["ldd", str(obj)], capture_output=True, text=True, check=False)
        if done.returncode != 0 or "not found" in done.stdout:
            raise SystemExit(f"assemble: ldd {obj} failed or misses a library:\n{done.stdout}{done.stderr}")
        for line in done.stdout.splitlines():
            match = _LDD_LINE.match(line)
            if not match:
                continue
            name, path = match.group(1), Path(match.group(2))
            if name is None:
                loader = path
            elif inside not in path.parents:
                libraries[name] = path
    if loader is None:
        raise SystemExit("assemble: ldd named no dynamic loader")
    return libraries, loader


def write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def loader_wrapper(loader: str, program: str, argv0: str) -> str:
    # --argv0: the program sees its wrapper as argv[0], so Python finds its prefix (/wharfie) from it and
    # sys.executable is this script, which any child can run. --inhibit-cache: /etc/ld.so.cache may be
    # the built image's. The library path is the loader's option, not LD_LIBRARY_PATH: children do not
    # inherit it. The loader always reads /etc/ld.so.preload, which after an in-place build is the image's.
    return f"""#!{HOME}/bin/sh
if [ -s /etc/ld.so.preload ]; then
    echo "wharfie: refusing to start {program}: /etc/ld.so.preload would load a library of the image built" \\
         "in place into it; remove the file, or build in the sandbox" >&2
    exit 126
fi
exec {HOME}/lib/{loader} --inhibit-cache --library-path {HOME}/lib --argv0 {argv0} {HOME}/libexec/{program} "$@"
"""


def install_busybox(prefix: Path, provided: set[str]) -> None:
    busybox = Path("/bin/busybox")
    if subprocess.run(["ldd", str(busybox)], capture_output=True, check=False).returncode == 0:
        raise SystemExit("assemble: /bin/busybox is dynamically linked: install busybox-static")
    shutil.copy2(busybox, prefix / "bin" / "busybox")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in sorted(set(applets) - provided - {"busybox"}):
        (prefix / "bin" / applet).symlink_to("busybox")


def install_programs(prefix: Path) -> str:
    """The interpreter, unshare, and every library they load; returns the loader's file name."""
    (prefix / "libexec").mkdir(parents=True)
    shutil.copy2(Path(sys.executable).resolve(), prefix / "libexec" / PYTHON)
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SystemExit("assemble: util-linux's unshare is missing")
    shutil.copy2(unshare, prefix / "libexec" / "unshare")
    objects = elf_files([prefix / "libexec", prefix / "lib" / PYTHON / "lib-dynload", prefix / "lib" / "python3"])
    libraries, loader = needed_libraries(objects, prefix)
    # Opened by name: looked for where the others were found (the base's own library directories).
    by_name = {name: directory / name for name in LOADED_BY_NAME
               for directory in sorted({path.parent for path in libraries.values()}) if (directory / name).exists()}
    if by_name:
        libraries.update(by_name)
        libraries.update(needed_libraries(list(by_name.values()), prefix)[0])
    for name, path in sorted(libraries.items()):
        shutil.copy2(path.resolve(), prefix / "lib" / name)
    shutil.copy2(loader.resolve(), prefix / "lib" / loader.name)
    return loader.name


def install_wrappers(prefix: Path, loader: str) -> None:
    bin_dir = prefix / "bin"
    write_script(bin_dir / "python3", loader_wrapper(loader, PYTHON, f"{HOME}/bin/python3"))
    write_script(bin_dir / "unshare", loader_wrapper(loader, "unshare", "unshare"))
    write_script(bin_dir / "wharfie", f"""#!{HOME}/bin/sh
# wharfie from {HOME} alone (image/README.md). -I: neither the working directory nor PYTHON* variables
# decide which code runs. TLS trusts {HOME}'s CA bundle unless the job names one of its own.
: "${{SSL_CERT_FILE:={HOME}/etc/ssl/certs/ca-certificates.crt}}"
export SSL_CERT_FILE OPENSSL_CONF={HOME}/etc/ssl/openssl.cnf OPENSSL_MODULES={HOME}/lib/ossl-modules
exec {HOME}/bin/python3 -I -m builder "$@"
""")


def install_config(prefix: Path) -> None:
    ssl_dir = prefix / "etc" / "ssl"
    (ssl_dir / "certs").mkdir(parents=True)
    shutil.copyfile(CA_BUNDLE, ssl_dir / "certs" / "ca-certificates.crt")
    (ssl_dir / "openssl.cnf").write_text(OPENSSL_CNF)
    (prefix / "etc" / "own-paths").write_text("".join(f"{path}\n" for path in OWN_PATHS))


def install_kaniko_compat(out: Path) -> None:
    (out / "kaniko" / ".docker").mkdir(parents=True)
    # $SSL_CERT_DIR, as in kaniko's image: GitLab's documentation has kaniko jobs add their private CA
    # there (additional-ca-cert-bundle.crt); wharfie reads every file of it (oci/tls_trust.py).
    (out / "kaniko" / "ssl" / "certs").mkdir(parents=True)
    write_script(out / "kaniko" / "executor", f"""#!{HOME}/bin/sh
# kaniko's executor command line, run by wharfie (`wharfie build` accepts kaniko's flags).
exec {HOME}/bin/wharfie build "$@"
""")
    (out / "busybox").symlink_to("wharfie/bin")  # GitLab's runner looks for /busybox/sh, as kaniko's image has it
    (out / "tmp").mkdir()
    (out / "tmp").chmod(0o1777)


def main(out: Path) -> None:
    prefix = out / HOME.name
    packages = prefix / "lib" / "python3" / "dist-packages"
    if not (packages / "builder").is_dir():
        raise SystemExit(f"assemble: {packages} holds no wharfie: pip install --target it first")
    shutil.rmtree(packages / "bin", ignore_errors=True)  # pip's console script: bin/wharfie replaces it
    (prefix / "bin").mkdir()
    copy_stdlib(prefix)
    loader = install_programs(prefix)
    install_busybox(prefix, provided={"unshare", "python3", "wharfie"})
    install_wrappers(prefix, loader)
    install_config(prefix)
    install_kaniko_compat(out)
    # Never checked against the sources' times: the tree is read-only in use and COPY may change mtimes.
    for tree in (prefix / "lib" / PYTHON, packages):
        if not compileall.compile_dir(tree, quiet=1, workers=0,
                                      invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH):
            raise SystemExit(f"assemble: compiling {tree} failed")
    for path in prefix.rglob("*"):
        if not path.is_symlink() and path.is_file() and path.stat().st_mode & stat.S_IWOTH:
            path.chmod(path.stat().st_mode & ~stat.S_IWOTH)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
