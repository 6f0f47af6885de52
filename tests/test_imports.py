"""What an import costs: the language alone loads neither the runtime nor its dependencies.

Each check runs in a fresh interpreter, since this one has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import tailor

# The package's public names: what `import tailor` offers, each imported on first use.
PUBLIC = {
    "CandidateTrace",
    "Decision",
    "Diagnostic",
    "Engine",
    "Event",
    "Explanation",
    "MemoryStore",
    "RuleInfo",
    "RulesError",
    "Ruleset",
    "Severity",
    "SlotDecision",
    "SlotTrace",
    "load",
    "loads",
    "parse",
}

# Counts the Lark parsers built, from before anything of tailor is imported.
COUNT_LARK_BUILDS = """\
import lark

builds = []
_init = lark.Lark.__init__


def _counting_init(self, *args, **kwargs):
    builds.append(1)
    _init(self, *args, **kwargs)


lark.Lark.__init__ = _counting_init
"""

HEAVY = ("tailor.runtime", "tailor.compiler", "fastapi", "onnxruntime", "lightgbm", "numpy")


def run_fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object, which is returned."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_importing_the_language_loads_no_runtime_and_builds_no_parse_tables() -> None:
    found = run_fresh(
        COUNT_LARK_BUILDS
        + f"""
import json, sys
import tailor.dsl
import tailor.dsl.parser
heavy = sorted(name for name in sys.modules if name.startswith({HEAVY!r}))
built_on_import = len(builds)
tailor.dsl.parser.parse("when user.tier == \\"gold\\" then show vip in hero")
tailor.dsl.parser.parse_expression("views(\\"Electronics\\", 24h) > 2")
print(json.dumps({{"heavy": heavy, "built_on_import": built_on_import, "built_after_parses": len(builds)}}))
"""
    )
    assert found == {"heavy": [], "built_on_import": 0, "built_after_parses": 1}


def test_the_first_parses_in_several_threads_build_the_tables_once() -> None:
    found = run_fresh(
        COUNT_LARK_BUILDS
        + """
import json, threading
from tailor.dsl.parser import parse

ready = threading.Barrier(8)
names = []

def first_parse(index):
    ready.wait()
    names.append(parse(f"when x then show c{index} in hero").declarations[0].content.name)

threads = [threading.Thread(target=first_parse, args=(index,)) for index in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"builds": len(builds), "names": sorted(names)}))
"""
    )
    assert found == {"builds": 1, "names": [f"c{index}" for index in range(8)]}


def test_importing_tailor_loads_neither_the_compiler_nor_the_runtime() -> None:
    found = run_fresh(
        """
import json, sys
import tailor
print(json.dumps(sorted(name for name in sys.modules if name.startswith(("tailor.compiler", "tailor.runtime")))))
"""
    )
    assert found == []


def test_every_public_name_resolves_in_a_fresh_interpreter() -> None:
    found = run_fresh(
        """
import json
import tailor
names = {name: type(getattr(tailor, name)).__name__ for name in tailor.__all__}
listed = sorted(set(tailor.__all__) - set(dir(tailor)))
print(json.dumps({"names": names, "missing_from_dir": listed}))
"""
    )
    assert sorted(found["names"]) == sorted(tailor.__all__)
    assert found["missing_from_dir"] == []


def test_public_names_are_the_objects_of_their_modules() -> None:
    from tailor.compiler.ruleset import Ruleset, loads
    from tailor.dsl.diagnostics import RulesError
    from tailor.dsl.parser import parse
    from tailor.runtime.engine import Engine
    from tailor.runtime.ruleset_loader import load

    assert set(tailor.__all__) == PUBLIC
    assert (tailor.Engine, tailor.Ruleset, tailor.RulesError, tailor.load, tailor.loads, tailor.parse) == (
        Engine,
        Ruleset,
        RulesError,
        load,
        loads,
        parse,
    )


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="Nonexistent"):
        _ = tailor.Nonexistent  # type: ignore[attr-defined]
