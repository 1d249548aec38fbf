"""The method registry agrees with everything generated from it or checked against it: `negtune train`'s
choices and defaults, the recipes folder, the README's table, the demo, the unlearning objectives. Fast."""

import re
from pathlib import Path

import pytest
import torch
import yaml
from transformers import Trainer

from negtune import methods
from negtune.data.io import DataError
from negtune.losses import npo as npo_losses
from negtune.methods import METHODS, UnlearnTerms
from negtune.train import DATA_FIELD_FAMILIES, main, parse_train_args, usage

ROOT = Path(__file__).resolve().parents[1]


def _minimal_config(tmp_path: Path, spec) -> str:
    """A recipe with no `method:` line: only the command word says which method it is."""
    data = {"unlearn": {"forget": "forget10"}}.get(spec.family, {"dataset": "x.jsonl"})
    cfg = {"model_name_or_path": "m", "output_dir": "o", "use_cpu": True, **data}
    if spec.family == "online_rlvr":
        cfg["bf16"] = False
    path = tmp_path / f"{spec.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_gets_its_defaults_from_the_command_word(name, tmp_path):
    spec = METHODS[name]
    _, args, _ = parse_train_args(name, ["--config", _minimal_config(tmp_path, spec)])
    assert type(args) is spec.config_class
    for field, value in spec.defaults.items():
        assert getattr(args, field) == value, f"{name}: {field} = {getattr(args, field)!r}, registry says {value!r}"
    if spec.family == "unlearn":
        assert args.method == name
        assert args.beta == {"simnpo": 2.5}.get(name, 0.1)  # the documented defaults (SimNPO: TOFU forget05)


@pytest.mark.parametrize("name", methods.names("unlearn"))
def test_unlearn_defaults_reach_a_config_built_in_python(name, tmp_path):
    """The Python paths (``methods.make_config(name)``, ``UnlearnConfig(method=name)``) get the registry defaults
    as the command word does (SimNPO: beta 2.5), and the open-unlearning forms of SimNPO's margin and NPO+KL's KL."""
    spec = METHODS[name]
    for args in (methods.make_config(name, output_dir=str(tmp_path), use_cpu=True),
                 spec.config_class(method=name, output_dir=str(tmp_path), use_cpu=True)):
        assert {f: getattr(args, f) for f in spec.defaults} == dict(spec.defaults), name
        assert args.beta == {"simnpo": 2.5}.get(name, 0.1)
        assert (args.simnpo_delta_form, args.kl_reduction) == ("reference", "batchmean")


def test_a_flag_or_recipe_line_overrides_the_method_default(tmp_path):
    spec = METHODS["simnpo"]
    path = _minimal_config(tmp_path, spec)
    assert parse_train_args("simnpo", ["--config", path, "--beta", "4.5"])[1].beta == 4.5
    Path(path).write_text(Path(path).read_text() + "beta: 3.5\n")
    assert parse_train_args("simnpo", ["--config", path])[1].beta == 3.5


def test_another_methods_name_or_data_flag_is_an_error(tmp_path):
    unlearn = _minimal_config(tmp_path, METHODS["simnpo"])
    with pytest.raises(DataError, match="--method says 'npo'"):
        parse_train_args("simnpo", ["--config", unlearn, "--method", "npo"])
    Path(unlearn).write_text(Path(unlearn).read_text() + "method: npo\n")
    with pytest.raises(DataError, match="recipe's `method:` says 'npo'"):
        parse_train_args("simnpo", ["--config", unlearn])
    online = _minimal_config(tmp_path, METHODS["nft"])
    with pytest.raises(DataError, match="--forget, --tofu_root do nothing for this method"):
        parse_train_args("nft", ["--config", online, "--forget", "forget10", "--tofu_root", "t"])
    with pytest.raises(DataError, match="--verifier does nothing"):
        parse_train_args("npo", ["--config", _minimal_config(tmp_path, METHODS["npo"]), "--verifier", "exact"])
    # an unlearning method that trains on the forget set alone takes no --retain (graddiff does)
    with pytest.raises(DataError, match=r"negtune train ga: --retain does nothing for this method \(it trains on "
                                        r"the forget set alone; graddiff, npo_rt, npo_kl"):
        parse_train_args("ga", ["--config", _minimal_config(tmp_path, METHODS["ga"]), "--retain", "retain90"])
    parse_train_args("graddiff", ["--config", _minimal_config(tmp_path, METHODS["graddiff"]), "--retain", "retain90"])
    # the offline config's own `method` field (nft / rft) may repeat the method's default, never another
    offline = _minimal_config(tmp_path, METHODS["rft_offline"])
    assert parse_train_args("rft_offline", ["--config", offline, "--method", "rft"])[1].neg_weight == 0.0
    with pytest.raises(DataError, match="--method says 'nft'"):
        parse_train_args("rft_offline", ["--config", offline, "--method", "nft"])


def test_a_mistyped_flag_is_named_with_the_closest_one(tmp_path, capsys):
    npo = _minimal_config(tmp_path, METHODS["npo"])
    with pytest.raises(DataError, match=r"negtune train npo: unknown flag --betta \(did you mean --beta\?\); "
                                        r"`negtune train npo --help` lists its flags"):
        parse_train_args("npo", ["--config", npo, "--betta", "0.1"])
    # a prefix of a real flag is not taken for it (argparse's abbreviations are off)
    with pytest.raises(DataError, match=r"unknown flag --max_step \(did you mean --max_steps\?\)"):
        parse_train_args("npo", ["--config", npo, "--max_step", "1"])
    from negtune.cli import main

    with pytest.raises(SystemExit) as stop:  # the other commands too (argparse's own error and status)
        main(["rollout", "--model", "m", "--dataset", "d", "--out", str(tmp_path / "r"), "--max-new-token", "3"])
    assert stop.value.code == 2 and "unrecognized arguments: --max-new-token 3" in capsys.readouterr().err


def test_registry_entries_are_complete():
    assert set(methods.FAMILIES) == {m.family for m in METHODS.values()}
    for name, spec in METHODS.items():
        assert issubclass(spec.trainer_class, Trainer), name
        assert spec.loss.__module__.startswith("negtune.losses") and "=" in (spec.loss.__doc__ or ""), name
        assert spec.objective and spec.paper, name
        assert set(spec.defaults) <= {f for f in spec.config_class.__dataclass_fields__}, name
        is_unlearn = spec.family == "unlearn"
        assert (spec.unlearn_objective is not None) == is_unlearn, name
        if not is_unlearn:
            assert not (spec.needs_reference or spec.retain or spec.needs_retain), name
        assert spec.retain in (None, "nll", "kl") and (not spec.needs_retain or spec.retain), name
    with pytest.raises(ValueError, match="unknown method 'npo3'; known: ga, graddiff"):
        methods.get("npo3")
    assert {f for fams in DATA_FIELD_FAMILIES.values() for f in fams} == set(methods.FAMILIES)


def test_unlearn_objectives_match_hand_computed_values():
    a = type("Args", (), {"forget_weight": 0.5, "retain_weight": 2.0, "beta": 0.1, "simnpo_delta": 0.0,
                          "simnpo_delta_form": "reference"})()
    logps, ref, n = torch.tensor([-4.0, -6.0]), torch.tensor([-3.0, -5.0]), torch.tensor([2, 3])
    forget_nll = -logps.sum() / n.sum()  # 2.0
    t = UnlearnTerms(logps, n, forget_nll, ref_logps=ref, retain_nll=torch.tensor(1.5), retain_kl=None)
    npo = (2 / 0.1) * torch.nn.functional.softplus(0.1 * (logps - ref)).mean()
    expected = {
        "ga": 0.5 * (-10.0 / 5),
        "graddiff": -0.5 * 2.0 + 2.0 * 1.5,
        "npo": 0.5 * npo,
        "npo_rt": 0.5 * npo + 2.0 * 1.5,
        "simnpo": 0.5 * npo_losses.simnpo_loss(logps, n, 0.1, 0.0) + 2.0 * 1.5,
    }
    for name, value in expected.items():
        assert float(METHODS[name].unlearn_objective(t, a)) == pytest.approx(float(value), rel=1e-6), name
    kl = UnlearnTerms(logps, n, forget_nll, ref_logps=ref, retain_nll=torch.tensor(1.5), retain_kl=torch.tensor(0.25))
    assert float(METHODS["npo_kl"].unlearn_objective(kl, a)) == pytest.approx(float(0.5 * npo + 2.0 * 0.25))
    no_retain = UnlearnTerms(logps, n, forget_nll, ref_logps=ref)
    assert float(METHODS["simnpo"].unlearn_objective(no_retain, a)) == pytest.approx(
        float(0.5 * npo_losses.simnpo_loss(logps, n, 0.1, 0.0)))


def test_recipes_folder_matches_the_registry():
    recipes = ROOT / "recipes"
    with_tiny = {p.parent.name for p in recipes.glob("*/tiny.yaml")}
    folders = {p.name for p in recipes.iterdir() if p.is_dir() and p.name != "accelerate"}
    assert with_tiny == folders == set(METHODS)


def test_readme_table_is_the_registry():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- methods table: generated by negtune.methods.markdown_table()")
    body = readme[readme.index("\n", start) + 1 : readme.index("<!-- end of methods table -->")]
    assert body.strip() == methods.markdown_table(), "README's methods table is stale: regenerate it"
    # every `negtune train WORD` the README mentions is a registry name
    for word in re.findall(r"negtune train (\w+)", readme):
        if word != "METHOD":
            assert word in METHODS, f"README mentions `negtune train {word}`, not in the registry"


def test_cli_lists_the_registry(capsys):
    assert main([]) == 0 and main(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.count("usage: negtune train") == 2
    for name, spec in METHODS.items():
        assert re.search(rf"^  {name}\s+{re.escape(spec.objective)}", usage(), re.M), name


def test_demo_methods_are_registry_names():
    source = (ROOT / "negtune" / "demo.py").read_text()
    used = re.findall(r'"\w+": \("(\w+)", \[', source)
    assert used and set(used) <= set(METHODS)


def test_plugins_are_options_of_their_methods_and_documented():
    import dataclasses

    import yaml

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("**Plug-ins**"):]
    for p in methods.PLUGINS.values():
        field = p.flag.split()[0].removeprefix("--")
        for name in p.methods:  # the switch is a documented field of every method it names
            spec = {f.name: f for f in dataclasses.fields(METHODS[name].config_class)}
            assert field in spec and spec[field].metadata.get("help"), (p.name, name)
        assert f"`{p.flag.split()[0]}" in table and p.paper.split(",")[0] in table
        assert p.loss.__doc__ and (ROOT / p.recipe).exists()
        recipe = yaml.safe_load((ROOT / p.recipe).read_text())
        assert field in recipe and recipe["method"] in p.methods
    assert set(methods.PLUGINS) == {"loreun", "goldfish"}
