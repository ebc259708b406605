"""The bundled TOML subset parser (Python 3.9/3.10) reads specs exactly like tomllib."""

import glob
import os

import pytest

from hasf.cib import toml

EXAMPLES = glob.glob(os.path.join(os.path.dirname(__file__), "..", "cib", "examples", "*.toml"))
tomllib = pytest.importorskip("tomllib")

SAMPLES = [
    'a = 1\nb = -2_000\nc = 1.5\nd = true\ne = false\nf = 0x1F\ng = 1e3\n',
    '# comment\n[t]\nx = "a\\tb\\u00e9 \\"q\\""  # trailing\ny = \'C:\\raw\'\n',
    '[a.b]\nc = 1\n[a]\nd = 2\n',
    '[[vm]]\nname = "vm1"\nprefer = { node1 = "INFINITY", node2 = 50 }\n'
    '[[vm]]\nname = "vm2"\nops = [ { name = "monitor", interval = "10s" },\n'
    '  { name = "start", timeout = 90 }, # c\n]\n',
    'x.y.z = "dotted"\n"quoted key" = 1\n',
    's = """\nline1\nline2"""\nl = \'\'\'\nraw\\n\'\'\'\n',
    '[[san.lun]]\nnumber = 1\n[[san.lun]]\nnumber = 2\n[san]\nnode = "n"\n',
    'empty = []\nnested = [[1, 2], ["a"]]\ninline = {}\n',
]


@pytest.mark.parametrize("text", SAMPLES)
def test_fallback_matches_tomllib(text):
    assert toml.loads(text, force_fallback=True) == tomllib.loads(text)


@pytest.mark.parametrize("path", EXAMPLES)
def test_fallback_reads_every_shipped_example_like_tomllib(path):
    with open(path) as handle:
        text = handle.read()
    assert toml.loads(text, force_fallback=True) == tomllib.loads(text)


@pytest.mark.parametrize("text", [
    "a = 1\na = 2\n", "[t]\n[t]\n", "a = \"open\n", "a = 01\n",
    "a = [1, 2\n", "= 1\n", "a = 1 b = 2\n", "a = {x = 1\n",
])
def test_fallback_rejects_what_tomllib_rejects(text):
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)
    with pytest.raises(toml.TOMLError, match="line"):
        toml.loads(text, force_fallback=True)


def test_fallback_refuses_dates_clearly():
    with pytest.raises(toml.TOMLError, match="dates and times are not supported.*line 2"):
        toml.loads("a = 1\nwhen = 2026-01-01\n", force_fallback=True)
