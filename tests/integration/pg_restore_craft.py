#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# pg_restore_craft.py DIR ID SPEC: write DIR/base.tar, DIR/backup_manifest (PostgreSQL's format,
# SHA256 or CRC32C checksums, a valid Manifest-Checksum) and DIR/entry.json (a ferry catalogue entry) for a
# crafted backup. SPEC is a comma-separated list of entries:
#   f:NAME        regular file NAME with 16 bytes of content (listed in the manifest)
#   d:NAME        directory
#   l:NAME>TARGET symlink
#   h:NAME>TARGET hard link
#   c:NAME        character device
#   m:NAME        regular file whose manifest checksum is wrong
#   a:ALGO        manifest checksums with ALGO from here on: SHA256 (the default) or CRC32C
# A crafted backup always gets global/pg_control and PG_VERSION last, so a refused entry
# earlier in the stream proves nothing after it was written.
import hashlib
import io
import json
import os
import sys
import tarfile
import time



def crc32c(data):
    """CRC-32C bit by bit; PostgreSQL prints the little-endian bytes of the value."""
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return (c ^ 0xFFFFFFFF).to_bytes(4, "little").hex()


def checksum(algo, data):
    return crc32c(data) if algo == "CRC32C" else hashlib.sha256(data).hexdigest()


out, ident, spec = sys.argv[1], sys.argv[2], sys.argv[3]
buf = io.BytesIO()
files = []
algo = ["SHA256"]
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
    def add_file(name, data, listed=None):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = 0o600
        ti.mtime = int(time.time())
        tf.addfile(ti, io.BytesIO(data))
        files.append((name, listed if listed is not None else data, algo[0]))

    for item in [s for s in spec.split(",") if s]:
        kind, rest = item.split(":", 1)
        if kind == "a":
            algo[0] = rest
        elif kind == "f":
            add_file(rest, b"crafted content\n")
        elif kind == "m":
            add_file(rest, b"crafted content\n", b"crafted c0ntent\n")
        elif kind == "d":
            ti = tarfile.TarInfo(rest)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o700
            tf.addfile(ti)
        elif kind in ("l", "h"):
            name, target = rest.split(">", 1)
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE
            ti.linkname = target
            tf.addfile(ti)
        elif kind == "c":
            ti = tarfile.TarInfo(rest)
            ti.type = tarfile.CHRTYPE
            ti.devmajor, ti.devminor = 1, 3
            tf.addfile(ti)
    ti = tarfile.TarInfo("global")
    ti.type = tarfile.DIRTYPE
    tf.addfile(ti)
    add_file("global/pg_control", b"\0" * 8192)
    add_file("PG_VERSION", b"15\n")
base = buf.getvalue()
open(os.path.join(out, "base.tar"), "wb").write(base)

lines = ['{ "PostgreSQL-Backup-Manifest-Version": 1,\n', '"Files": [\n']
ents = []
listed = set()
for name, data, alg in files:
    if name in listed:  # a file twice in the tar is listed once
        continue
    listed.add(name)
    if name.startswith("/") or ".." in name.split("/"):
        name = name.lstrip("/").replace("../", "")  # listed anyway, the path check comes first
    ents.append('{ "Path": %s, "Size": %d, "Last-Modified": "2026-11-25 14:00:00 GMT", '
                '"Checksum-Algorithm": "%s", "Checksum": "%s" }'
                % (json.dumps(name), len(data), alg, checksum(alg, data)))
lines.append(",\n".join(ents) + "\n")
lines.append('],\n"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }\n],\n')
text = "".join(lines)
text += '"Manifest-Checksum": "%s"}\n' % hashlib.sha256(text.encode()).hexdigest()
man = text.encode()
open(os.path.join(out, "backup_manifest"), "wb").write(man)


def part(name, data):
    return {"name": name, "key": "pg/backups/%s/%s" % (ident, name), "size": len(data),
            "stored_size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


entry = {
    "format": 1, "id": ident, "label": "crafted", "system_identifier": "7311234567890123456",
    "pg_version_num": 150000, "timeline": 1, "wal_segment_size": 16777216,
    "start_lsn": "0/2000028", "stop_lsn": "0/2000100", "start_wal": "000000010000000000000002",
    "stop_wal": "000000010000000000000002", "start_time": "2026-01-01T00:00:00Z",
    "stop_time": "2026-01-01T00:00:01Z", "size": len(base) + len(man), "stored_size": 0,
    "parts": [part("base.tar", base), part("backup_manifest", man)],
}
json.dump(entry, open(os.path.join(out, "entry.json"), "w"), indent=1)
