"""Real file systems that fail on demand, for the store's disk-fault tests (root needed).

`FailingDisk` is an ext4 file system (mounted with errors=remount-ro, as Debian mounts its root)
on a loop device whose backing file lives on a second ext4, itself on a loop device:

    <workdir>/lower.img --loop--> ext4 "lower" --file disk.img--loop--> ext4 "disk" (the store)

- `fail_io()` shuts the lower file system down (FS_IOC_SHUTDOWN, as when its device is gone):
  from then on the loop device under "disk" fails every read and write with a block-layer I/O
  error, so "disk" sees exactly what a dying drive gives ext4 (dmesg: "I/O error, dev loopN,
  ... op 0x1:(WRITE)"). Writes into the page cache still succeed; fdatasync returns EIO.
- `turn_read_only()` raises a real ext4 error on "disk" (/sys/fs/ext4/<dev>/trigger_fs_error):
  ext4 aborts its journal and remounts read-only under the open files; writes return EROFS.
- `repair()` unmounts, brings the lower file system back (journal replay), checks "disk" with
  e2fsck and mounts it again: what was durable before the fault is there again.

Device-mapper (dm-error, dm-flakey) would be the usual tool; the CI kernel has no
device-mapper, but has loop devices and ext4. Only the loop devices made here are detached.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import subprocess
from pathlib import Path

FS_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
FS_GOING_FLAGS_NOLOGFLUSH = 2  # shut down at once, like a device that vanished


def _run(*args: str) -> str:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()} "
                           "(the disk-fault tests need root, loop devices and ext4)")
    return r.stdout.strip()


class FailingDisk:
    def __init__(self, workdir: Path, size_mb: int = 32) -> None:
        self.workdir = workdir
        self.size_mb = size_mb
        self.lower_image = workdir / "lower.img"
        self.lower = workdir / "lower"
        self.mountpoint = workdir / "disk"
        self.lower_device = ""
        self.device = ""
        self.lower_shut_down = False

    def start(self) -> "FailingDisk":
        self.lower.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self.lower_image, "wb") as f:
            f.truncate((self.size_mb + 24) << 20)
        _run("mkfs.ext4", "-q", "-F", str(self.lower_image))
        self.lower_device = _run("losetup", "--find", "--show", str(self.lower_image))
        _run("mount", self.lower_device, str(self.lower))
        image = self.lower / "disk.img"
        # Allocated up front: writes through the loop device then never allocate in "lower".
        _run("fallocate", "-l", f"{self.size_mb}M", str(image))
        _run("mkfs.ext4", "-q", "-F", str(image))
        self._mount_disk()
        return self

    def _mount_disk(self) -> None:
        self.device = _run("losetup", "--find", "--show", str(self.lower / "disk.img"))
        _run("mount", "-o", "errors=remount-ro", self.device, str(self.mountpoint))

    def fail_io(self) -> None:
        fd = os.open(self.lower, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("I", FS_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)
        self.lower_shut_down = True

    def turn_read_only(self) -> None:
        name = os.path.basename(self.device)
        with open(f"/sys/fs/ext4/{name}/trigger_fs_error", "w") as f:
            f.write("eq1 test: a file system error\n")

    def is_read_only(self) -> bool:
        """Whether creating a file fails with EROFS (ext4's emergency read-only state is not
        a mount flag that statvfs shows)."""
        try:
            os.close(os.open(self.mountpoint / "probe", os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as e:
            return e.errno == errno.EROFS
        os.unlink(self.mountpoint / "probe")
        return False

    def sync(self) -> None:
        """syncfs(2) on the store's file system."""
        _run("sync", "-f", str(self.mountpoint))

    def repair(self) -> None:
        """Unmount (nothing may hold files open), bring the devices back, e2fsck, mount."""
        _run("umount", str(self.mountpoint))
        self._unmount_disk()
        if self.lower_shut_down:
            _run("umount", str(self.lower))
            _run("mount", self.lower_device, str(self.lower))
            self.lower_shut_down = False
        self.device = _run("losetup", "--find", "--show", str(self.lower / "disk.img"))
        r = subprocess.run(["e2fsck", "-fy", self.device], capture_output=True, text=True,
                           timeout=60)
        if r.returncode not in (0, 1):  # 1: errors found and corrected
            raise RuntimeError(f"e2fsck {self.device}: {r.returncode} {r.stdout} {r.stderr}")
        _run("mount", "-o", "errors=remount-ro", self.device, str(self.mountpoint))

    def _unmount_disk(self) -> None:
        if self.device:
            if os.path.ismount(self.mountpoint):
                subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True,
                               timeout=60)
            subprocess.run(["losetup", "-d", self.device], capture_output=True, timeout=60)
            self.device = ""

    def close(self) -> None:
        self._unmount_disk()
        if self.lower_device:
            subprocess.run(["umount", "-l", str(self.lower)], capture_output=True, timeout=60)
            subprocess.run(["losetup", "-d", self.lower_device], capture_output=True,
                           timeout=60)
            self.lower_device = ""

