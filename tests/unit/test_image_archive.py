"""Reading images with no daemon: docker save tarballs and OCI layouts, and hostile ones that must not hurt."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time

import pytest
from image_archives import VERSION_PY, config, docker_save, layer, oci_layout, torch_image_layers

from mldoctor.image import archive
from mldoctor.image.archive import ArchiveError, read_archive
from mldoctor.image.checks import judge
from mldoctor.image.targets import from_values
from mldoctor.model import Status

LIB = "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"


def test_a_docker_save_tarball_gives_the_same_facts_as_the_daemon(tmp_path):
    history = [{"created_by": "ADD rootfs /"}, {"created_by": "ENV CUDA_VISIBLE_DEVICES=all", "empty_layer": True},
               {"created_by": "RUN pip install torch"}]  # fmt: skip
    cfg = config(env=["PATH=/usr/bin", "CUDA_VISIBLE_DEVICES=all"], history=history)
    facts = read_archive(str(docker_save(tmp_path / "i.tar", cfg, torch_image_layers())))
    assert facts.source == "docker-save" and facts.ref == "train:1"
    assert facts.python == ["/usr/bin/python3 -> python3.11"] and facts.python_version == "3.11"
    assert facts.torch is not None and (facts.torch.version, facts.torch.cuda) == ("2.5.1+cu124", "12.4")
    assert facts.driver_files == [LIB]
    assert [layer.size for layer in facts.layers] == [4, 0, len(VERSION_PY) + 4]
    results = {r.id: r.status for r in judge(facts, from_values("550.90", ["H100"], "flags"))}
    assert results["image.driver_libs"] is Status.FAIL and results["image.visible_devices"] is Status.FAIL
    assert results["image.torch"] is Status.PASS and results["image.arch"] is Status.PASS


def test_whiteouts_and_opaque_directories_remove_lower_files(tmp_path):
    layers = [
        *torch_image_layers(),
        layer({"usr/lib/x86_64-linux-gnu/.wh.libnvidia-ml.so.1": b""}),
        layer({"usr/local/lib/python3.11/dist-packages/torch/.wh..wh..opq": b""}),
    ]
    facts = read_archive(str(docker_save(tmp_path / "i.tar", config(), layers)))
    assert facts.driver_files == [] and facts.torch is None and facts.python_version == "3.11"


@pytest.mark.parametrize("nested", [False, True])
def test_an_oci_layout_folder_with_gzipped_layers(tmp_path, nested):
    root = oci_layout(tmp_path / "oci", config(user="app"), torch_image_layers(), nested=nested)
    facts = read_archive(str(root))
    assert facts.source == "oci-layout" and facts.ref == "train:1" and facts.user == "app"
    assert facts.torch is not None and facts.torch.cuda == "12.4" and facts.driver_files == [LIB]


def test_an_oci_layout_packed_as_a_tar(tmp_path):
    root = oci_layout(tmp_path / "oci", config(), torch_image_layers())
    packed = tmp_path / "oci.tar"
    with tarfile.open(packed, "w") as tar:
        tar.add(root, arcname=".")
    assert read_archive(str(packed)).driver_files == [LIB]


def test_cuda_compat_on_the_library_path(tmp_path):
    cfg = config(env=["LD_LIBRARY_PATH=/usr/local/cuda/compat:/usr/local/nvidia/lib64"])
    compat = layer({"usr/local/cuda/compat/libcuda.so.1": ("link", "libcuda.so.550.1"),
                    "usr/local/cuda/compat/libcuda.so.550.1": b"x"})  # fmt: skip
    assert read_archive(str(docker_save(tmp_path / "i.tar", cfg, [compat]))).compat_dirs == ["/usr/local/cuda/compat"]


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "a/../../b"])
def test_a_manifest_pointing_outside_the_archive_is_refused(tmp_path, bad):
    path = docker_save(tmp_path / "i.tar", config(), [layer({})])
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    manifest = json.loads(members["manifest.json"])
    manifest[0]["Config"] = bad
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ArchiveError, match="bad reference"):
        read_archive(str(path))


def test_layer_members_that_escape_are_ignored_and_nothing_is_written(tmp_path):
    evil = layer({"../../../../tmp/mldoctor-evil": b"x", "/usr/bin/python3": ("link", "/etc/shadow")})
    before = set(os.listdir(tmp_path))
    facts = read_archive(str(docker_save(tmp_path / "i.tar", config(), [evil])))
    assert set(os.listdir(tmp_path)) - before == {"i.tar"}
    assert not os.path.exists("/tmp/mldoctor-evil")
    assert facts.python == ["/usr/bin/python3 -> /etc/shadow"] and facts.python_version is None


def test_a_symlink_loop_in_the_outer_tar_is_an_error_not_a_hang(tmp_path):
    extra = {"loop/a.tar": ("link", "b.tar"), "loop/b.tar": ("link", "a.tar")}
    path = docker_save(tmp_path / "i.tar", config(), [], extra=extra)
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    manifest[0]["Layers"] = ["loop/a.tar"]
    with tarfile.open(path, "a") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))  # a later member of the same name wins
    started = time.monotonic()
    facts = read_archive(str(path))
    assert time.monotonic() - started < 5
    assert any("links" in error for error in facts.errors)


def test_an_oversized_version_py_is_not_read(tmp_path):
    big = layer({"usr/local/lib/python3.11/dist-packages/torch/version.py": ("size", archive.MAX_VERSION_PY + 1)})
    assert read_archive(str(docker_save(tmp_path / "i.tar", config(), [big]))).torch is None


def test_a_folder_blob_that_links_outside_is_refused(tmp_path):
    root = oci_layout(tmp_path / "oci", config(), [layer({})])
    index = json.loads((root / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    target = root / "blobs" / "sha256" / digest
    target.unlink()
    target.symlink_to("/etc/passwd")
    with pytest.raises(ArchiveError, match="outside"):
        read_archive(str(root))


@pytest.mark.parametrize("content", [b"", b"not a tar at all" * 100, b"\x1f\x8b\x08garbage"])
def test_what_is_not_an_archive_is_one_clear_error(tmp_path, content):
    path = tmp_path / "x.tar"
    path.write_bytes(content)
    with pytest.raises(ArchiveError):
        read_archive(str(path))


def test_a_corrupt_layer_is_recorded_and_the_config_still_judged(tmp_path):
    facts = read_archive(str(docker_save(tmp_path / "i.tar", config(user="root"), [b"\x1f\x8bnot gzip" * 10])))
    assert facts.errors and facts.user == "root"


def test_several_images_in_one_tarball_are_picked_by_tag(tmp_path):
    path = docker_save(tmp_path / "i.tar", config(), [layer({})], tag="a:1")
    assert read_archive(str(path), "a:1").ref == "a:1"
    with pytest.raises(ArchiveError):
        read_archive(str(tmp_path / "missing.tar"))


def test_an_oversized_extended_header_is_refused_before_it_is_read(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("usr/bin/python3")
        info.pax_headers = {"comment": "x" * (archive.MAX_HEADER + 10)}
        tar.addfile(info, io.BytesIO(b""))
    facts = read_archive(str(docker_save(tmp_path / "i.tar", config(), [buffer.getvalue()])))
    assert any("extended tar header" in error for error in facts.errors) and facts.python == []
