"""The library as one zip of its sources: what ``--py-files`` ships to executors, what a Spark
Connect server is given as a Python artifact, and what ``make dist`` puts beside the wheel.

    python -m segmentation.package TARGET.zip
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The package's files: its modules and the dashboard's script and style (segmentation/assets/).
SOURCES = (".py", ".js", ".css")


def package_zip(directory: str) -> str:
    """A zip of the package: written into ``directory`` from its sources, or, when the package
    was itself imported from a zip (``--py-files``, ``PYTHONPATH=segmentation.zip``), that zip."""
    if os.path.isdir(PACKAGE_DIR):
        return write_zip(os.path.join(directory, "segmentation.zip"))
    archive = os.path.dirname(PACKAGE_DIR)
    if not (os.path.isfile(archive) and zipfile.is_zipfile(archive)):
        raise RuntimeError(f"cannot tell where the segmentation package's sources are: {PACKAGE_DIR}")
    return archive


def write_zip(target: str) -> str:
    """Writes every source file (``SOURCES``) of the package (``segmentation/...``) into ``target``, atomically."""
    root = os.path.dirname(PACKAGE_DIR)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(target)), suffix=".zip")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, dirs, files in os.walk(PACKAGE_DIR):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(SOURCES):
                    path = os.path.join(folder, name)
                    archive.write(path, os.path.relpath(path, root))
        if not archive.namelist():
            raise RuntimeError(f"no sources found under {PACKAGE_DIR}")
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m segmentation.package TARGET.zip")
    print(write_zip(sys.argv[1]))
