"""The image's own Python packages: listed by the probe inside it (importlib.metadata, bounded), carried in its
document, written to the bundle as raw/image-packages.txt."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

from mldoctor.facts.probe_document import parse_document
from mldoctor.probe import probe
from mldoctor.probe.launch import PROBE_FILE


def dist_info(site, name, version, folder=None, metadata_text=None):
    path = site / f"{folder or name.replace('-', '_')}-{version}.dist-info"
    path.mkdir(parents=True)
    if metadata_text is None:
        metadata_text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if metadata_text:
        (path / "METADATA").write_text(metadata_text)


def test_the_probe_lists_the_distributions_its_interpreter_imports(tmp_path):
    """Run the real probe with only two made-up site directories on its path (-S: no site-packages)."""
    first, second = tmp_path / "first", tmp_path / "second"
    dist_info(first, "Alpha-Pkg", "1.0")
    dist_info(second, "alpha_pkg", "2.0")  # the same distribution, shadowed by the first on sys.path
    dist_info(first, "n" * 500, "2", folder="long")
    dist_info(first, "folded", "1", metadata_text="Metadata-Version: 2.1\nName: folded\nVersion: 1.0\n evil\n")
    dist_info(first, "broken", "0", metadata_text="")  # a .dist-info without METADATA
    env = {"PYTHONPATH": f"{first}:{second}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-S", str(PROBE_FILE), "--no-bench"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    doc, notes = parse_document(proc.stdout)
    assert proc.stdout.count("\n") == 2 and notes == [] and not any("packages" in e for e in doc.errors)
    listed = dict(doc.packages)
    folded = listed.pop("folded")
    assert len(doc.packages) == 3 and listed == {"Alpha-Pkg": "1.0", "n" * probe.MAX_NAME: "2"}
    assert folded.split() == ["1.0", "evil"]  # a folded header keeps its newline: the bundle makes it one line
    assert doc.packages_omitted == 1
    assert len(json.dumps(doc.packages)) < 1000


class FakeDistribution:
    def __init__(self, name, version="1.0", broken=False):
        self.name, self.version, self.broken, self.reads = name, version, broken, 0

    @property
    def metadata(self):
        self.reads += 1
        if self.broken:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return {"Name": self.name, "Version": self.version}


def test_the_list_is_bounded_in_count_length_and_reading(monkeypatch):
    dists = [FakeDistribution(f"pkg{i}", "v" * 1000) for i in range(50)]
    monkeypatch.setattr(metadata, "distributions", lambda: iter(dists))
    found, omitted = probe._packages(limit=10)
    assert found == [[f"pkg{i}", "v" * probe.MAX_VERSION] for i in range(10)] and omitted == 40
    assert sum(d.reads for d in dists) == 20  # name and version of the ten listed; the rest only counted


def test_unreadable_and_duplicate_distributions_cannot_make_it_read_forever(monkeypatch):
    dists = [FakeDistribution("x", broken=True) for _ in range(10)] + [FakeDistribution("same") for _ in range(30)]
    dists.append(FakeDistribution("late"))
    monkeypatch.setattr(metadata, "distributions", lambda: iter(dists))
    found, omitted = probe._packages(limit=5)
    assert found == [["same", "1.0"]]  # 20 read: 10 broken, 10 'same' (9 of them shadowed, which is not omitted)
    assert omitted == 10 + 21  # the broken ones, and the 21 past the reading bound, only counted
    assert sum(d.reads for d in dists) == 10 + 2 * 10


def test_the_default_bounds_keep_the_document_under_what_the_host_reads(monkeypatch):
    from mldoctor.probe.launch import STDOUT_LIMIT

    worst = [FakeDistribution(str(i) + "\u2028" * 1000, "\u2028" * 1000) for i in range(10 * probe.MAX_PACKAGES)]
    monkeypatch.setattr(metadata, "distributions", lambda: iter(worst))
    found, omitted = probe._packages()
    assert 0 < len(found) < probe.MAX_PACKAGES and len(found) + omitted == len(worst)
    assert probe.MAX_PACKAGE_BYTES - 2000 < len(json.dumps(found)) <= probe.MAX_PACKAGE_BYTES <= STDOUT_LIMIT / 4
