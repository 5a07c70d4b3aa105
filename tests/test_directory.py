"""The agency directory: any depth, codes checked, parents explicit."""

from __future__ import annotations

import pytest

from directory import (
    Agency,
    Directory,
    DirectoryError,
    UnknownAgency,
    check_code,
    load_directory,
)


def test_demo_directory_shape() -> None:
    directory = load_directory()
    levels = [a.level for a in directory]
    assert levels.count("province") == 1
    assert levels.count("department") == 3
    assert levels.count("district") == 3
    assert levels.count("commune") == 6
    province = directory.get("000.00.00.H41")
    assert province.name == "UBND tỉnh Nghệ An" and province.parent is None
    for district in (a for a in directory if a.level == "district"):
        assert len(directory.children(district.code)) == 2
        assert district.parent == province.code
    assert len(directory.officers) >= 3


def test_any_depth_and_parent_is_data_not_derived_from_code() -> None:
    # Five levels, and a commune whose code does not "look like" its parent's.
    chain = [
        Agency("000.00.00.G22", "Văn phòng Chính phủ", "ministry"),
        Agency("000.00.00.H41", "UBND tỉnh Nghệ An", "province", "000.00.00.G22"),
        Agency("000.00.21.H41", "UBND thành phố Vinh", "district", "000.00.00.H41"),
        Agency("000.07.99.H41", "UBND phường Trường Thi", "commune", "000.00.21.H41"),
        Agency("001.07.99.H41", "Tổ dân phố 1", "neighbourhood", "000.07.99.H41"),
    ]
    directory = Directory(tuple(chain))
    assert directory.depth("001.07.99.H41") == 4
    assert [a.code for a in directory.ancestors("000.07.99.H41")] == [
        "000.00.21.H41",
        "000.00.00.H41",
        "000.00.00.G22",
    ]
    assert [depth for depth, _ in directory.walk()] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("code", ["000.00.00.H41", "000.46.24.H44", "123.45.67.G22"])
def test_valid_codes(code: str) -> None:
    assert check_code(code) == code


@pytest.mark.parametrize(
    "code",
    ["", "H41", "000.00.00.h41", "00.00.00.H41", "000.00.00.H4", "000.00.00.H41 ", "000-00-00-H41"],
)
def test_invalid_codes(code: str) -> None:
    with pytest.raises(DirectoryError):
        check_code(code)


def test_inconsistent_directories_are_refused() -> None:
    a = Agency("000.00.00.H41", "A", "province")
    with pytest.raises(DirectoryError, match="appears twice"):
        Directory((a, a))
    with pytest.raises(DirectoryError, match=r"parent 000\.00\.00\.H99 is not in the directory"):
        Directory((Agency("000.00.01.H41", "B", "department", "000.00.00.H99"),))
    with pytest.raises(DirectoryError, match="cycle"):
        Directory(
            (
                Agency("000.00.01.H41", "B", "x", "000.00.02.H41"),
                Agency("000.00.02.H41", "C", "x", "000.00.01.H41"),
            )
        )
    with pytest.raises(UnknownAgency):
        Directory((a,)).get("000.00.01.H41")


def test_demo_directory_matches_its_json_schema() -> None:
    import json
    from importlib import resources
    from pathlib import Path

    import jsonschema

    schema = json.loads((Path(__file__).parents[1] / "schemas/directory.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(resources.files("directory.data").joinpath("nghe_an.json").read_text("utf-8"))
    jsonschema.validate(data, schema)
    data["agencies"][0]["code"] = "H41"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
