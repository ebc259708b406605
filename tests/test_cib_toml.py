"""Reading specs: tomllib (3.11+) and tomli (below 3.11) the same way, and hostile TOML
never a traceback.

Python 3.9/3.10 are not installed here, so the 3.9 path is tested by handing
hasf.cib.tomlread the tomli module explicitly (it is what the import falls
back to there); tomllib is the 3.11 path.  Every case runs with both.  The
fuzz run is bounded (a fixed seed, a fixed number of mutants, a time cap):
spec.loads may accept a mutant or raise CibError with "line" in it --
anything else (ValueError, RecursionError, TypeError, KeyError ...) fails.
Mutation that brings the tracebacks back: drop the RecursionError/ValueError
handlers in tomlread.loads, or the isinstance checks in hasf.cib.spec's readers.
"""

import glob
import os
import random
import time

import pytest

from hasf.cib import expand, spec, tomlread
from hasf.cib.agents import AgentCatalog
from hasf.cib.errors import CibError

tomllib = pytest.importorskip("tomllib")
try:
    import tomli
except ImportError:  # the test extra should bring it; skip only the tomli cases then
    tomli = None
NO_TOMLI = pytest.mark.skipif(tomli is None, reason="tomli is not installed (pip install tomli)")
READERS = [pytest.param(tomllib, id="tomllib-3.11"),
           pytest.param(tomli, id="tomli-3.9", marks=NO_TOMLI)]
HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = sorted(glob.glob(os.path.join(HERE, "..", "cib", "examples", "*.toml")))


def test_the_interpreter_picks_tomllib_here():
    assert tomlread.reader() is tomllib


@NO_TOMLI
@pytest.mark.parametrize("path", EXAMPLES)
def test_both_readers_read_every_shipped_example_alike(path):
    with open(path) as handle:
        text = handle.read()
    assert tomlread.loads(text, path, tomli) == tomlread.loads(text, path, tomllib)
    assert spec.loads(text, path, module=tomli).node_names == \
        spec.loads(text, path, module=tomllib).node_names


HOSTILE = [
    ("a = 1\na = 2\n", 2),                               # tomllib rejects; the old parser too
    ("[cluster]\nnodes = [\"n1\"\n", 3),
    ("x = 1\ny = " + "[" * 100000 + "\n", 2),              # RecursionError in tomllib
    ("x = 1\ny = " + "{a=" * 50000 + "\n", 2),
    ("a = 1\nb = " + "9" * 5000 + "\n", 2),                # ValueError: int digit limit
    ("a = \"\x00\"\n", 1),
    ("a = 01\n", 1),
    ("[t]\n[t]\n", 2),
]


@pytest.mark.parametrize("module", READERS)
@pytest.mark.parametrize("text, line", HOSTILE)
def test_hostile_toml_is_a_spec_error_with_its_line(module, text, line):
    with pytest.raises(CibError) as caught:
        spec.loads(text, "hostile.toml", module=module)
    message = str(caught.value)
    assert message.startswith("hostile.toml")
    assert "line %d" % line in message, message


def test_bytes_that_are_not_utf8_name_their_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[cluster]\nname = "caf\xe9"\n')
    with pytest.raises(CibError, match="not UTF-8.*line 2"):
        spec.load(str(path))


VALID_BUT_ODD = [
    'cluster = 5\n', 'fence = 5\n', 'fence = [1, 2]\n', '[cluster]\nnodes = [1]\n',
    '[cluster]\nnodes = "n1"\nproperties = [1]\n',
    '[cluster]\nnodes = ["n1"]\n[[fence]]\nname = 1\nagent = []\nhosts = [{}]\n',
    '[cluster]\nnodes = ["n1"]\n[fencing-topology]\nn1 = [[1], {a = 1}, 3]\n',
    '[cluster]\nnodes = ["n1"]\n[[vm]]\nname = "v"\nprefer = {n1 = [1]}\nops = [1, {}]\n',
    '[cluster]\nnodes = ["n1"]\n[[vm]]\nname = "v"\nops = {name = "x"}\nmonitor = []\n',
    '[cluster]\nnodes = ["n1"]\n[[resource]]\nname = "r"\nagent = "ocf:a:b"\n'
    'clone = 1979-05-27\nafter = 3\nops = [{name = "m", interval = 1979-05-27T07:32:00}]\n',
    '[cluster]\nnodes = ["n1"]\n[san]\nlun = [{number = "x"}, 3]\nnode = 1\n',
    '[cluster]\nnodes = ["n1"]\n[[store]]\nname = "s"\ncheck-level = [1]\nclone = "yes"\n',
    '[cluster]\nnodes = ["n1"]\n[ocfs2]\naddresses = {n1 = 1.5}\nparams = 3\n',
    '[cluster]\nnodes = ["n1"]\n[agents]\nvm = ["ocf:a:b"]\nfilesystem = "ocf::"\n',
    '[cluster]\nnodes = ["n1"]\n[[vm]]\nname = "v"\nprefer = 3\navoid = [{}]\n',
]


@pytest.mark.parametrize("module", READERS)
@pytest.mark.parametrize("text", VALID_BUT_ODD)
def test_valid_toml_of_the_wrong_shape_is_a_spec_error(module, text):
    with pytest.raises(CibError):
        spec.loads(text, "odd.toml", module=module)


def _mutants(seed, count):
    """Deterministic mutants of the shipped examples: bytes flipped, dropped, doubled,
    brackets/quotes/values spliced in."""
    rng = random.Random(seed)
    corpus = []
    for path in EXAMPLES:
        with open(path) as handle:
            corpus.append(handle.read())
    splices = ["[", "]", "{", "}", '"', "'", "=", ",", "\n", "[[", "]]", ".", "#", "\\",
               '"""', "1979-05-27", "inf", "-0", "0x", "[]", "{}", "true", "= [", "= {",
               "9" * 5000, "[" * 2000, "\x00", "\u00e9", "node1", "ocf:/tmp:x", "fence_",
               "hosts = 3", "prefer = []", "ops = [[]]", "params = 1"]
    for _ in range(count):
        text = rng.choice(corpus)
        for _edit in range(rng.randint(1, 6)):
            pos = rng.randrange(len(text) + 1)
            kind = rng.random()
            if kind < 0.3:
                text = text[:pos] + text[pos + rng.randint(1, 12):]
            elif kind < 0.7:
                text = text[:pos] + rng.choice(splices) + text[pos:]
            else:
                end = min(len(text), pos + rng.randint(1, 40))
                text = text[:pos] + text[pos:end] * 2 + text[end:]
        yield text


@pytest.mark.parametrize("module", READERS)
def test_bounded_fuzz_run_never_a_traceback(module):
    start = time.monotonic()
    accepted = rejected = expanded = 0
    catalog = AgentCatalog(use_source=False, use_installed=False)
    for text in _mutants(seed=20240610, count=600):
        try:
            scenario = spec.loads(text, "mutant.toml", collect=True, module=module)
            accepted += 1
            if not scenario.problems:
                expand.expand(scenario, catalog, "pacemaker-3.0")   # the build goes on
                expanded += 1
        except CibError as exc:
            rejected += 1
            if "TOML" in str(exc) or "UTF-8" in str(exc) or "usable" in str(exc):
                assert "line" in str(exc), str(exc)
        if time.monotonic() - start > 20:
            break
    # the mutants reach the reader, the spec checks and the expansion
    assert accepted and rejected and expanded
