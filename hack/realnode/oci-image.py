#!/usr/bin/env python3
"""Throw-away OCI archive builder for the real-node prototype (hack/image.sh will be
the real one): packs a root directory into a one-layer image and writes an OCI image
layout tar that `ctr images import` accepts. Deterministic: same tree, same digest.

usage: oci-image.py --name REF --rootfs DIR --out FILE.tar [--entrypoint JSON]
                    [--cmd JSON] [--user UID:GID] [--env K=V ...]
"""
import argparse, hashlib, io, json, os, tarfile


def layer_tar(root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                info = tar.gettarinfo(full, os.path.relpath(full, root))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def blob(tar, data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo("blobs/sha256/" + digest[7:])
    info.size, info.mtime = len(data), 0
    tar.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def add_file(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    tar.addfile(info, io.BytesIO(data))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--rootfs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--entrypoint", type=json.loads)
    p.add_argument("--cmd", type=json.loads)
    p.add_argument("--user")
    p.add_argument("--env", action="append", default=[])
    a = p.parse_args()
    layer = layer_tar(a.rootfs)
    cfg = {"Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"] + a.env}
    if a.entrypoint:
        cfg["Entrypoint"] = a.entrypoint
    if a.cmd:
        cfg["Cmd"] = a.cmd
    if a.user:
        cfg["User"] = a.user
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    with tarfile.open(a.out + ".tmp", "w") as tar:
        add_file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        cdesc = blob(tar, json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json")
        ldesc = blob(tar, layer, "application/vnd.oci.image.layer.v1.tar")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": [ldesc]}
        mdesc = blob(tar, json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json")
        mdesc["annotations"] = {"io.containerd.image.name": a.name,
                                "org.opencontainers.image.ref.name": a.name}
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [mdesc]}
        add_file(tar, "index.json", json.dumps(index, sort_keys=True).encode())
    os.replace(a.out + ".tmp", a.out)
    print(a.name, mdesc["digest"])


if __name__ == "__main__":
    main()
