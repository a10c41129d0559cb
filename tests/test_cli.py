"""The command line itself: `mmadapt data synth`, and usage errors without tracebacks."""
from __future__ import annotations

import json
import subprocess

from conftest import clean_env, mmadapt_command
from mmadapt.synth import generate_benchmark


def mmadapt(*args):
    return subprocess.run(mmadapt_command() + [str(a) for a in args], capture_output=True, text=True, env=clean_env())


def test_data_synth_writes_the_benchmark_the_generator_writes(tmp_path):
    sizes = dict(corpus_sentences=200, nli_train=30, nli_dev=9, nli_test=9, pawsx_train=20, pawsx_dev=6,
                 pawsx_test=6, qa_train=10, qa_dev=4, qa_test=4)
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in sizes.items()]
    out = mmadapt("data", "synth", tmp_path / "cli", "--seed", "3", "--languages", "src,na", *flags)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "cli" / "manifest.json") in out.stdout
    direct = generate_benchmark(tmp_path / "direct", seed=3, languages=["src", "na"], **sizes)
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest == json.loads(direct.manifest.read_text())
    for rel in ("corpus/na.txt", "multinli_1.0/multinli_1.0_train.jsonl", "XNLI-1.0/xnli.test.tsv",
                "paws-x/train.tsv", "squad/train-v1.1.json"):
        assert (tmp_path / "cli" / rel).read_bytes() == (direct.root / rel).read_bytes(), rel


def test_data_synth_names_an_unknown_language_in_one_line(tmp_path):
    out = mmadapt("data", "synth", tmp_path / "x", "--languages", "src,zz")
    assert out.returncode == 2
    assert "unknown synthetic language 'zz'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


def test_an_unknown_command_is_a_usage_error_not_a_traceback():
    out = mmadapt("trian", "recipes/quickstart.yaml")
    assert out.returncode == 2
    assert "No such command 'trian'" in out.stderr and "Traceback" not in out.stderr
