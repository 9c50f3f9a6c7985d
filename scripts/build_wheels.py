#!/usr/bin/env python3
"""Fill ``wheels/`` so the image builds with no network: ``docker build --build-arg PIP_NO_INDEX=1 .``

Run it on a machine that can reach PyPI (or a mirror pip is configured for). It puts into the
output folder:

* every runtime dependency of spiffctl, as wheels for the image's platform and Python;
* the build requirements of spiffctl itself (setuptools), because the image builds spiffctl from
  the source in the build context, so the image never carries a stale spiffctl wheel.

The official backend image is ``python:3.13-alpine``, i.e. musl: ``--for-official-image`` selects
CPython 3.13 and the ``musllinux_1_2`` / ``musllinux_1_1`` wheel tags for this machine's
architecture (or ``--arch``). Without a platform option the wheels match the Python running this
script. Examples::

    scripts/build_wheels.py --for-official-image                  # x86_64 official base
    scripts/build_wheels.py --for-official-image --arch aarch64   # arm64 official base
    scripts/build_wheels.py --python-version 3.11 --glibc 2.36    # a Debian bookworm base
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def build_requirements(pyproject: Path) -> list[str]:
    text = pyproject.read_text()
    try:
        import tomllib

        return list(tomllib.loads(text)["build-system"]["requires"])
    except ImportError:  # Python 3.10: the one array we need is simple enough to read
        match = re.search(r"^\[build-system\][^\[]*?requires\s*=\s*\[(.*?)\]", text, re.S | re.M)
        return re.findall(r"[\"']([^\"']+)[\"']", match.group(1)) if match else ["setuptools"]


def platform_tags(args: argparse.Namespace) -> list[str]:
    arch = args.arch or platform.machine()
    tags = list(args.platform)
    if args.for_official_image:
        tags += [f"musllinux_1_2_{arch}", f"musllinux_1_1_{arch}"]
    if args.glibc:
        major, minor = (int(x) for x in args.glibc.split("."))
        # pip does not expand a manylinux tag to the older ones it implies: list them all.
        tags += [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
        tags += [f"manylinux2014_{arch}"]
    return tags


def marker_envs(version: str, arch: str) -> list[dict[str, str]]:
    """Marker environments for every patch release of the target minor version.

    ``pip download --python-version`` evaluates dependency markers against the Python running pip,
    not the target (so e.g. redis' ``async-timeout; python_full_version < "3.11.3"`` goes missing
    for Debian's 3.11.2 when pip runs on 3.11.7). We evaluate them ourselves, generously.
    """
    minor = ".".join(version.split(".")[:2])
    patches = [version] if version.count(".") == 2 else [f"{minor}.0", f"{minor}.99"]
    base = {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_machine": arch,
        "python_version": minor,
        "extra": "",
    }
    return [base | {"python_full_version": p, "implementation_version": p} for p in patches]


def missing_requirements(folder: Path, envs: list[dict[str, str]]) -> list[str]:
    """Dependencies of the wheels in ``folder`` that apply to the target and have no wheel there."""
    have = {canonicalize_name(w.name.split("-")[0]) for w in folder.glob("*.whl")}
    wanted: dict[str, str] = {}
    for wheel in folder.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            lines = z.read(meta).decode().splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker and "extra" in str(req.marker):
                continue  # extras we asked for were resolved by pip already
            if req.marker and not any(req.marker.evaluate(env) for env in envs):
                continue
            name = canonicalize_name(req.name)
            if name not in have:
                wanted[name] = f"{req.name}{req.specifier}"
    return sorted(wanted.values())


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "wheels", help="folder (default: wheels/)")
    parser.add_argument("--source", type=Path, default=ROOT, help="spiffctl source tree (default: this repo)")
    parser.add_argument("--extras", default="", help="extras to include, e.g. sqs")
    parser.add_argument("--for-official-image", action="store_true", help="CPython 3.13, musllinux (Alpine)")
    parser.add_argument("--python-version", help="target Python, e.g. 3.13")
    parser.add_argument("--platform", action="append", default=[], help="wheel platform tag (repeatable)")
    parser.add_argument("--glibc", help="target glibc version, e.g. 2.36: adds the manylinux tags it accepts")
    parser.add_argument("--arch", help="target architecture for the presets (default: this machine's)")
    args = parser.parse_args()

    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    target: list[str] = []
    version = args.python_version or ("3.13" if args.for_official_image else None)
    tags = platform_tags(args)
    if version:
        target += ["--python-version", version, "--implementation", "cp"]
    for tag in tags:
        target += ["--platform", tag]
    if target:
        target += ["--only-binary=:all:"]
    # The same pins as CI and the Dockerfile, so the offline image gets the versions CI tested.
    constraints = args.source.resolve() / "constraints.txt"
    pins = ["-c", str(constraints)] if constraints.is_file() else []

    with tempfile.TemporaryDirectory() as tmp:
        # spiffctl's own wheel only to read its dependencies from; the image builds from source.
        pip("wheel", "--no-deps", "--wheel-dir", tmp, str(args.source.resolve()))
        (wheel,) = Path(tmp).glob("spiffctl-*.whl")
        extras = f"[{args.extras}]" if args.extras else ""
        pip("download", "--dest", str(out), *target, *pins, f"spiffctl{extras} @ {wheel.as_uri()}")
    for stale in out.glob("spiffctl-*.whl"):
        stale.unlink()
    pip("download", "--dest", str(out), *target, *build_requirements(args.source / "pyproject.toml"))
    envs = marker_envs(version or platform.python_version(), args.arch or platform.machine())
    for _ in range(10):
        missing = missing_requirements(out, envs)
        if not missing:
            break
        pip("download", "--dest", str(out), *target, *pins, *missing)
    print(f"wheels for {version or 'this Python'} {' '.join(tags) or 'this platform'} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
