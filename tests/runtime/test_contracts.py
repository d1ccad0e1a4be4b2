"""The files other programs read are contracts (prp_deploy/contracts, JSON Schema 2020-12):
real outputs validate, a broken or newer model.json is refused in one line naming the field,
and what the C++ reader takes from model.json is what the schema guarantees."""

import copy
import json
import re
import subprocess
import sys

import jsonschema
import pytest

from prp_deploy.contracts import NAMES, schema, validate
from prp_deploy.errors import PRPError
from prp_deploy.runtime.model_info import parse_model_info, read_model_info
from tests.conftest import REPO
from tests.runtime.conftest import LEVELS
from tests.runtime.test_many import cli, grey_video

SCHEMAS = REPO / "prp_deploy" / "contracts"


def test_every_schema_is_a_valid_draft_2020_12_schema():
    for name in NAMES:
        s = schema(name)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(s)


def test_a_bundled_definition_is_its_own_schema_file():
    """summary.schema.json carries source_row's schema in $defs (so it validates offline, alone):
    the copy must stay the file's."""
    row = {k: v for k, v in schema("source_row").items() if k not in ("$schema", "$id")}
    assert schema("summary")["$defs"]["source_row"] == row
    assert '"$ref": "#/' in (SCHEMAS / "summary.schema.json").read_text()
    for name in NAMES:  # every $ref stays inside its own file
        assert re.findall(r'"\$ref":\s*"([^"]*)"', (SCHEMAS / f"{name}.schema.json").read_text()) in ([], ["#/$defs/source_row"])


def test_an_export_and_a_run_validate(exported, evaluated_run, brightness_model, tmp_path):
    validate(json.loads((exported / "model.json").read_text()), "model", "model.json")
    validate(json.loads((exported / "parity.json").read_text()), "parity", "parity.json")
    videos = [grey_video(tmp_path / "v" / f"{n}.avi", [(LEVELS["dark"], 20), (LEVELS["bright"], 20)]) for n in ("a", "b")]
    out = tmp_path / "res"
    r = cli("run", *map(str, videos), str(tmp_path / "missing.avi"), "--model", str(brightness_model), "--allow-unverified",
            "--segments", "--out", str(out), "--features", str(out), "-q")
    assert r.returncode == 1 and (out / "summary.json").exists(), r.stderr  # the missing source fails; the others are whole
    validate(json.loads((out / "summary.json").read_text()), "summary", "summary.json")
    rows = [json.loads(l) for l in (out / "sources.jsonl").read_text().splitlines()]
    assert {r["status"] for r in rows} == {"ok", "failed"}
    for row in rows:
        validate(row, "source_row", "sources.jsonl")
    # A stock validator, given only the schema file, offline (no $ref that points outside it).
    run = evaluated_run
    for name, doc in (("model", exported / "model.json"), ("parity", exported / "parity.json"), ("eval", run / "eval.json"),
                      ("summary", out / "summary.json")):
        stock = subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMAS / f"{name}.schema.json"), str(doc)],
                               capture_output=True, text=True, timeout=120)
        assert stock.returncode == 0, (name, stock.stdout, stock.stderr)
    windows = [json.loads(l) for l in (out / "a.jsonl").read_text().splitlines()]
    segments = [json.loads(l) for l in (out / "a.segments.jsonl").read_text().splitlines()]
    assert windows and segments
    for w in windows:
        validate(w, "window", "a.jsonl")
    for s in segments:
        validate(s, "segment", "a.segments.jsonl")
    index = [json.loads(l) for l in (out / "a.features.jsonl").read_text().splitlines()]
    assert len(index) == len(windows)
    for row in index:
        validate(row, "feature_row", "a.features.jsonl")


@pytest.mark.parametrize("change,field", [
    (lambda d: d["preprocess"].__setitem__("crop", "32"), "preprocess.crop"),
    (lambda d: d.pop("classes"), "classes"),
    (lambda d: d["outputs"].pop("logits"), "outputs.logits"),
    (lambda d: d["input"].__setitem__("shape", [-1, 3, 8, 32]), "input.shape"),
])
def test_a_broken_model_json_is_one_line_naming_the_field(change, field, exported, tmp_path):
    d = json.loads((exported / "model.json").read_text())
    change(d)
    with pytest.raises(PRPError, match=rf"^x/model.json: {re.escape(field)}: "):
        parse_model_info(d, "x/model.json")


def test_a_newer_schema_version_is_refused_and_the_cli_says_so(exported, tmp_path):
    import shutil

    export = tmp_path / "export"
    shutil.copytree(exported, export)
    d = json.loads((export / "model.json").read_text())
    d["schema_version"] = 2
    (export / "model.json").write_text(json.dumps(d))
    with pytest.raises(PRPError, match="schema_version 2, newer than this prp-deploy reads"):
        read_model_info(export)
    r = cli("run", "x.avi", "--model", str(export))
    assert r.returncode == 1 and "upgrade prp-deploy" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_what_the_cpp_reader_takes_from_model_json_the_schema_guarantees():
    """examples/cpp/src/prp_runtime.cpp reads fields with OpenCV's FileStorage: each must be
    required by the schema (else a valid model.json could leave the C++ reader with nothing)."""
    source = (REPO / "examples" / "cpp" / "src" / "prp_runtime.cpp").read_text()
    source = source[source.index("ModelInfo load_model_info("):source.index("cv::Mat preprocess_frame(")]  # the model.json reader
    top = set(re.findall(r'\bfs\["(\w+)"\]', source))
    pre = set(re.findall(r'\bp\["(\w+)"\]', source))
    s = schema("model")
    assert top and pre and "preprocess" in top
    assert top <= set(s["required"]), top - set(s["required"])
    assert pre <= set(s["properties"]["preprocess"]["required"]), pre - set(s["properties"]["preprocess"]["required"])
    assert re.search(r'fs\["schema_version"\]\) != 1', source)  # the C++ reader knows major 1, as the schema's readers do
