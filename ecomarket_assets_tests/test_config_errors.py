"""Bad configuration is refused when it is read, with a message naming the file or the setting and never a secret:
spec YAML nested without end, a webhook URL that cannot be called, registry commands on a model with nothing to
roll back, a checkout cloned under another folder name (issue 31, items 7 and 9)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ecomarket_assets.campaigns.specs import SpecError, load_specs
from ecomarket_assets.flows.specs import load_flows
from ecomarket_assets.spec_yaml import MAX_DEPTH, read_yaml
from ecomarket_assets_tests.conftest import REPO_ROOT

# ----------------------------------------------------------------------------- spec YAML

DEEP = 20_000


def _problems(error: SpecError) -> dict[str, tuple[str, str]]:
    return {file: (field, message) for file, field, message in error.problems}


@pytest.mark.parametrize("loader, shipped", [(load_specs, "campaigns"), (load_flows, "flows")])
def test_spec_yaml_nested_20000_deep_is_refused_naming_the_file(loader, shipped: str, tmp_path: Path) -> None:
    folder = tmp_path / shipped
    folder.mkdir()
    for spec in (REPO_ROOT / shipped).glob("*.yaml"):  # the valid shipped files beside the bad ones
        (folder / spec.name).write_text(spec.read_text())
    (folder / "deep_list.yaml").write_text("name: deep\nchannels: " + "[" * DEEP + "]" * DEEP + "\n")
    (folder / "deep_map.yaml").write_text("name: deep\ntrigger: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n")
    (folder / "loop.yaml").write_text("name: loop\nchannels: &a [email, *a]\n")
    started = time.perf_counter()
    with pytest.raises(SpecError) as error:
        loader(folder)
    assert time.perf_counter() - started < 10
    problems = _problems(error.value)
    assert set(problems) == {f"{shipped}/deep_list.yaml", f"{shipped}/deep_map.yaml", f"{shipped}/loop.yaml"}
    # the document mapping is level 1: the 50th bracket would open level 51
    assert problems[f"{shipped}/deep_list.yaml"] == ("(yaml)", f"line 2, column {10 + MAX_DEPTH}: nested deeper "
                                                                f"than {MAX_DEPTH} levels")
    assert problems[f"{shipped}/deep_map.yaml"][1].endswith(f"nested deeper than {MAX_DEPTH} levels")
    assert problems[f"{shipped}/loop.yaml"] == ("(yaml)", "line 2, column 22: alias *a refers to a collection that "
                                                          "contains it")


def test_yaml_depth_limit_and_what_stays_allowed(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("a: " + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\n")  # exactly MAX_DEPTH levels
    data, problem = read_yaml(path)
    assert problem is None
    for _ in range(MAX_DEPTH - 1):
        data = data["a"] if isinstance(data, dict) else data[0]
    assert data == [1]
    path.write_text("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")
    assert read_yaml(path) == (None, f"line 1, column {4 + MAX_DEPTH - 1}: nested deeper than {MAX_DEPTH} levels")
    path.write_text("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n")  # shared aliases that are not loops are fine
    assert read_yaml(path) == ({"a": [1, 2], "b": [1, 2], "c": [[1, 2], [1, 2]]}, None)
    path.write_text("a: 1\na: 2\n")
    assert "'a' appears twice" in read_yaml(path)[1]


def test_a_yaml_bomb_is_still_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "bomb.yaml").write_text("\n".join(lines) + "\nname: *i\n")
    started = time.perf_counter()
    with pytest.raises(SpecError) as error:
        load_flows(folder)
    assert time.perf_counter() - started < 10
    assert ("flows/bomb.yaml", "name", "Input should be a valid string") in error.value.problems
