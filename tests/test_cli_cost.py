"""`selab cost` from flags and from a config file; bad input exits non-zero without a traceback."""

import json

import yaml

from runners.cli.main import main
from tests.support import selab


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cost_json_for_se_and_plain_resnet50(capsys):
    se = _json(capsys, ["cost", "--backbone", "resnet50", "--se", "--reduction", "16", "--json"])
    plain = _json(capsys, ["cost", "--backbone", "resnet50", "--no-se", "--json"])
    assert se["params"] == 28_088_024 and plain["params"] == 25_557_032
    assert se["flops"] > plain["flops"] > 4.1e9
    assert se["se_params"] == se["params"] - plain["params"]
    assert [s["stage"] for s in se["per_stage"]] == [1, 2, 3, 4]
    assert sum(s["se_params"] for s in se["per_stage"]) == se["se_params"]
    assert se["arch"]["se"]["bias"] is True  # FC biases on by default


def test_cost_flags_select_placement_squeeze_gate_and_stages(capsys):
    out = _json(
        capsys,
        [
            "cost",
            "--backbone",
            "resnet50",
            "--placement",
            "after_3x3",
            "--squeeze",
            "max",
            "--gate",
            "tanh",
            "--stages",
            "1,1,1,0",
            "--json",
        ],
    )
    assert out["arch"]["se"]["placement"] == "after_3x3"
    assert out["arch"]["se"]["squeeze"] == "max" and out["arch"]["se"]["gate"] == "tanh"
    assert out["per_stage"][3]["se_params"] == 0 and out["per_stage"][0]["se_params"] > 0


def test_cost_reads_a_config_file_and_flags_override_it(tmp_path, capsys):
    path = tmp_path / "arch.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "arch": {
                    "backbone": "cifar_resnet20",
                    "input_size": 32,
                    "num_classes": 10,
                    "se": {"reduction": 4},
                }
            }
        )
    )
    out = _json(capsys, ["cost", str(path), "--reduction", "8", "--json"])
    assert out["arch"]["backbone"] == "cifar_resnet" and out["arch"]["se"]["reduction"] == 8
    assert main(["cost", str(path)]) == 0
    text = capsys.readouterr().out
    assert "cifar_resnet20" in text and "stage" in text


def test_invalid_combination_exits_nonzero_with_the_message_and_no_traceback(tmp_path):
    proc = selab(
        ["cost", "--backbone", "resnet18", "--placement", "after_3x3"], cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2
    assert "se.placement" in proc.stderr and "allowed: standard, pre, post, identity" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_depth_is_reported(capsys):
    assert main(["cost", "--backbone", "resnet", "--depth", "42"]) == 2
    err = capsys.readouterr().err
    assert "depth" in err and "18, 34, 50, 101, 152" in err


def test_cost_of_sknet50_and_of_nosqueeze(capsys):
    sk = _json(capsys, ["cost", "--backbone", "resnext50", "--attention", "sk", "--json"])
    assert sk["arch"]["attention"] == "sk" and sk["arch"]["se"]["placement"] == "replace_3x3"
    assert sk["params"] == 27_479_784  # the SKNet paper: 27.5M
    assert sk["se_params"] == sk["params"] - 25_028_904  # over the plain ResNeXt-50
    small = ["--backbone", "cifar_resnet20", "--input-size", "32", "--reduction", "4", "--json"]
    nosq = _json(capsys, ["cost", "--squeeze", "none", *small])
    se = _json(capsys, ["cost", *small])
    assert nosq["arch"]["se"]["squeeze"] == "none"
    # the same layers and parameters, applied at every position instead of once
    assert nosq["se_params"] == se["se_params"] and nosq["se_flops"] > 5 * se["se_flops"]


def test_cost_text_lists_every_attention_kind_per_stage(capsys):
    from search_space.cost import _plain_count

    assert (
        main(
            [
                "cost",
                "--backbone",
                "cifar_resnet20",
                "--input-size",
                "32",
                "--attention",
                "eca",
                "--eca-k",
                "3",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cifar_resnet20  attention: eca k=3")
    rows = {
        line.split()[0]: line
        for line in lines
        if line.strip().startswith(("se ", "eca ", "cbam ", "sk "))
    }
    assert set(rows) == {"se", "eca", "cbam", "sk"}
    assert "n/a: attention: sk cannot sit in the basic units" in rows["sk"]
    assert rows["eca"].count("/") == 4  # the total and three stages
    # the plain network was counted once for all kinds: later costs hit the cache
    hits = _plain_count.cache_info().hits
    assert main(["cost", "--backbone", "cifar_resnet20", "--input-size", "32", "--json"]) == 0
    assert _plain_count.cache_info().hits == hits + 1


def test_attention_that_cannot_sit_there_exits_2(tmp_path):
    proc = selab(["cost", "--backbone", "resnet18", "--attention", "sk"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "attention: sk cannot sit in the basic units of resnet18" in proc.stderr
    assert "Traceback" not in proc.stderr
