"""bench.profile's own parts that need no server: reading py-spy's stacks, titling its flame graph."""

from __future__ import annotations

from pathlib import Path

from bench import profile

STACKS = """\
run (uvicorn/main.py:580);decide (runtime/service.py:350);fetch (runtime/redis_store.py:700) 6
run (uvicorn/main.py:580);decide (runtime/service.py:351) 3
run (uvicorn/main.py:580);_keep (runtime/attribution.py:120);fetch (runtime/redis_store.py:702) 1
"""


def test_the_summary_counts_self_and_inclusive_samples_by_function() -> None:
    lines = profile.summary(STACKS, top=3)
    assert lines[0] == "10 samples; self:"
    selfs = lines[1 : lines.index("inclusive:")]
    assert selfs[0].split() == ["70.0%", "fetch", "(redis_store.py)"]  # two lines of one function, summed
    assert selfs[1].split() == ["30.0%", "decide", "(service.py)"]
    inclusive = lines[lines.index("inclusive:") + 1 :]
    assert inclusive[0].split() == ["100.0%", "run", "(main.py)"]
    assert inclusive[1].split() == ["90.0%", "decide", "(service.py)"]
    assert profile.summary("") == ["no samples"]


def test_the_flame_graph_is_titled_without_the_profiler_s_command_line(tmp_path: Path) -> None:
    svg = tmp_path / "flame.svg"
    svg.write_text(
        '<svg><text id="title" x="50%">/usr/bin/py-spy record --pid 7 --output /tmp/x.svg</text>'
        '<text id="details"> </text></svg>'
    )
    profile.retitle(svg, "tailor serve <flags> at saturation")
    assert svg.read_text() == (
        '<svg><text id="title" x="50%">tailor serve &lt;flags&gt; at saturation</text><text id="details"> </text></svg>'
    )


def test_the_report_finds_the_flame_graphs_beside_its_pictures(tmp_path: Path) -> None:
    assert profile.flame_graphs(tmp_path) == {}
    (tmp_path / profile.flame_graph_name("site")).write_text("<svg/>")
    assert profile.flame_graphs(tmp_path) == {"flame-site": "flame-decide-site.svg"}
