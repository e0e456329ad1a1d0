from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from scibind.errors import ConfigError, UnknownNameError
from scibind.train.overrides import parse_override
from scibind.train.recipe import Recipe, dump_recipe, load_recipe


def test_registered_recipe_loads_with_its_name():
    recipe = load_recipe("core/synthetic-clip")
    assert recipe.name == "core/synthetic-clip"
    assert set(recipe.towers) == {"view_a", "view_b"}
    assert recipe.data.dataset == "core/synthetic-pairs"
    assert [t["name"] for t in recipe.eval.tasks] == [
        "core/retrieval",
        "core/linear-probe",
        "core/knn",
        "core/geometry",
    ]


def test_unknown_recipe_name_is_a_clear_error():
    with pytest.raises(UnknownNameError, match="synthetic-clip"):
        load_recipe("core/synthetic-clp")


def test_relative_manifest_paths_resolve_against_the_recipe_folder(write_recipe, tmp_path, monkeypatch):
    path = write_recipe(data={"dataset": None, "train": "manifests/m.csv"})
    monkeypatch.chdir(Path("/"))
    recipe = load_recipe(path)
    assert recipe.data.train == (tmp_path / "manifests" / "m.csv").resolve()
    assert recipe.name == "tiny"


def test_set_overrides_nested_keys_lists_and_free_form_mappings(write_recipe):
    recipe = load_recipe(
        write_recipe(eval={"tasks": [{"name": "core/knn", "label": "label", "view": "view_a"}]}),
        [
            "train.max_steps=7",
            "train.lr=3e-4",
            "train.betas=[0.8, 0.9]",
            "towers.view_a.encoder_kwargs.dropout=0.5",
            "objective.kwargs.temperature=0.1",
            "eval.tasks.0.k=3",
            "train.grad_clip=null",
            "description=hello world",
        ],
    )
    assert recipe.train.max_steps == 7
    assert recipe.train.lr == pytest.approx(3e-4)
    assert recipe.train.betas == (0.8, 0.9)
    assert recipe.towers["view_a"].encoder_kwargs["dropout"] == 0.5
    assert recipe.objective.kwargs == {"positive_target": None, "temperature": 0.1}
    assert recipe.eval.tasks[0]["k"] == 3
    assert recipe.train.grad_clip is None
    assert recipe.description == "hello world"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_step=3", r"unknown key 'max_step' in train; valid keys: accumulate, batch_size"),
        ("trian.lr=1", r"unknown key 'trian' in the recipe's top level; valid keys: data, description"),
        ("towers.view_a.encodr=core/mlp", r"unknown key 'encodr' in towers.view_a"),
        ("eval.tasks.5.k=3", r"eval.tasks is a list of 0 items"),
        ("train.lr", r"expected KEY=VALUE"),
        ("train.lr=[1,", r"not a YAML scalar"),
    ],
)
def test_bad_overrides_name_the_key_and_the_valid_keys(write_recipe, override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(write_recipe(), [override])


def test_validation_errors_name_the_file_and_the_key(write_recipe):
    path = write_recipe(train={"batch_size": 0, "schedule": "linear"})
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    text = str(info.value)
    assert str(path) in text and "train.batch_size" in text and "train.schedule" in text


def test_extra_keys_in_the_file_are_rejected(write_recipe):
    with pytest.raises(ConfigError, match=r"train.max_stepz"):
        load_recipe(write_recipe(train={"max_stepz": 3}))


def test_objective_pairs_must_name_towers(write_recipe):
    with pytest.raises(ConfigError, match=r"objective.*view_c"):
        load_recipe(write_recipe(objective={"pairs": [["view_a", "view_c"]]}))


def test_missing_file_and_non_mapping_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_recipe(bad)


def test_dump_round_trips_with_paths_relative_to_the_run(write_recipe, tmp_path):
    run = tmp_path / "run"
    recipe = load_recipe(write_recipe(data={"dataset": None, "train": "run/data/m.csv"}))
    text = dump_recipe(recipe, relative_to=run)
    assert yaml.safe_load(text)["data"]["train"] == "data/m.csv"
    run.mkdir()
    (run / "config.yaml").write_text(text)
    again = load_recipe(run / "config.yaml")
    assert again == recipe
    assert isinstance(again, Recipe)


def test_parse_override_values_are_yaml():
    assert parse_override("a.b=1") == (["a", "b"], 1)
    assert parse_override("a=on") == (["a"], True)
    assert parse_override("a={x: 1}") == (["a"], {"x": 1})
    assert parse_override("a=") == (["a"], None)
