"""Files laid out the way the kubelet mounts a Kubernetes ConfigMap, and updated the way it updates one.

The kubelet keeps the files in a hidden timestamped directory, points
``..data`` at it, and shows each key as a symlink through ``..data``. An
update writes a new timestamped directory, swaps ``..data`` atomically (a
new symlink renamed over the old one), then deletes the old directory.
"""

from __future__ import annotations

import os
from pathlib import Path

FIRST_STAMP = "..2026_11_29_12_00_00.123"

# A two-file ruleset for the volume tests and the reload tests that replace or restore its files.
HOME = """\
content hero_generic = {"id": "generic"}
content hero_vip = {"id": "vip"}

rule vip when user.tier == "gold" then show hero_vip in hero priority 10

default show hero_generic in hero
"""
SEARCH = """\
content tips = {"id": "tips"}

default show tips in sidebar
"""


def configmap(mount: Path, files: dict[str, str], stamp: str = FIRST_STAMP) -> Path:
    """Write ``files`` at ``mount`` as a ConfigMap volume, or as an update of the one already there."""
    mount.mkdir(exist_ok=True)
    data = mount / stamp
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)
    link = mount / "..data_tmp"
    link.symlink_to(stamp)
    old = os.readlink(mount / "..data") if (mount / "..data").is_symlink() else None
    os.replace(link, mount / "..data")
    for name in files:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(Path("..data") / name)
    if old is not None:
        for stale in (mount / old).iterdir():
            stale.unlink()
        (mount / old).rmdir()
    return mount
