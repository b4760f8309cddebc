"""Task definitions (``mnist5k:parity`` ...), relabelled splits, class-map validation, teacher switches."""

import types

import numpy as np
import pytest

from kdzoo.config import DataConfig, make_config
from kdzoo.data import load_dataset, make_splits
from kdzoo.contract.errors import ConfigError
from kdzoo.data.relabel import read_class_map, resolve_task, split_spec, validate_class_map
from kdzoo_crosstask.class_mapped_kd import ClassMappedKDConfig, resolve_map

DIGITS = [str(i) for i in range(10)]


@pytest.mark.parametrize("spec, expected", [
    ("mnist5k", ("mnist5k", None)),
    ("mnist5k:parity", ("mnist5k", "parity")),
    ("digits:digits[0-4]", ("digits", "digits[0-4]")),
    ("cifar10:classes[cat,dog]", ("cifar10", "classes[cat,dog]")),
    ("imagefolder:/data/pets:mod3", ("imagefolder:/data/pets", "mod3")),
    ("imagefolder:/data/parity", ("imagefolder:/data/parity", None)),  # a path is never a task
    ("mnist5k:classmap=C:/maps/m.yaml", ("mnist5k", "classmap=C:/maps/m.yaml")),
])
def test_task_suffix_parsing(spec, expected):
    assert split_spec(spec) == expected


def test_task_class_maps():
    m, names = resolve_task("mod3", DIGITS)
    assert names == ["0 mod 3", "1 mod 3", "2 mod 3"] and m["7"] == "1 mod 3" and m["9"] == "0 mod 3"
    assert resolve_task("parity", DIGITS)[0]["3"] == "odd"
    assert resolve_task("ge5", DIGITS) == ({c: "<5" if int(c) < 5 else ">=5" for c in DIGITS}, ["<5", ">=5"])
    assert resolve_task("digits[5-9]", DIGITS) == ({c: c for c in "56789"}, list("56789"))
    assert resolve_task("digits[7,0-1]", DIGITS)[1] == ["0", "1", "7"]
    for bad, match in [("mod11", "N must be in 2..10"), ("digits[3-1]", "empty"), ("digits[12]", "out of range"),
                       ("digits[4]", "at least 2"), ("classes[0,foo]", "neither a class index"),
                       ("nope", "unknown task")]:
        with pytest.raises(ConfigError, match=match):
            resolve_task(bad, DIGITS)


def test_misspelt_task_is_an_error_not_the_plain_dataset(zoo):
    with pytest.raises(ConfigError, match="takes no argument, and 'pairty' is no task"):
        load_dataset("digits:pairty", None, zoo)


def test_relabelled_splits_keep_the_base_partition_and_are_stratified(zoo):
    base = load_dataset("mnist5k", None, zoo)
    cfg = DataConfig(name="mnist5k", labels_per_class=5)
    b_split = make_splits(base, DataConfig(name="mnist5k"))
    mod3 = load_dataset("mnist5k:mod3", None, zoo)
    s = make_splits(mod3, cfg)
    # same images, relabelled: the partition is the base dataset's, so a 10-digit teacher trained on
    # mnist5k never saw a test image of the mod-3 student
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(s, part), getattr(b_split, part))
    y = mod3.y.numpy()
    assert np.bincount(y[s.test]).tolist() == [400, 300, 300]  # digits {0,3,6,9}, {1,4,7}, {2,5,8} x 100
    assert np.bincount(y[s.labelled]).tolist() == [5, 5, 5] and set(s.labelled) <= set(s.train)
    # a class subset keeps its images' base split, stratified over the kept classes
    hi = load_dataset("mnist5k:digits[5-9]", None, zoo)
    h = make_splits(hi, cfg)
    assert hi.classes == list("56789") and len(hi.y) == 2500
    assert set(hi.base_index.numpy()[h.test]) == {i for i in b_split.test if base.y[i] >= 5}
    assert np.bincount(hi.y.numpy()[h.test]).tolist() == [100] * 5
    assert np.bincount(hi.y.numpy()[h.labelled]).tolist() == [5] * 5


def test_class_map_file_task(tmp_path, zoo):
    path = tmp_path / "loops.yaml"
    path.write_text("classes: [loop, none]\nmap: {0: loop, 6: loop, 8: loop, 9: loop, 1: none, 7: none}\n")
    b = load_dataset(f"digits:classmap={path}", None, zoo)
    assert b.classes == ["loop", "none"] and b.base_classes == DIGITS and sorted(b.class_map) == list("016789")
    mapping, declared = read_class_map(path)
    assert declared == ["loop", "none"] and mapping["0"] == "loop"
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [loop, none, other]\nmap: {0: loop, 1: none}\n")
    with pytest.raises(ConfigError, match="target class 'other' is reached by no source class"):
        load_dataset(f"digits:classmap={bad}", None, zoo)


def test_class_map_validation_errors():
    with pytest.raises(ConfigError, match="unknown source class 'x'"):
        validate_class_map({"x": "even"}, DIGITS, ["even", "odd"])
    with pytest.raises(ConfigError, match="target class 'odd' is reached by no source class"):
        validate_class_map({"0": "even", "2": "even"}, DIGITS, ["even", "odd"])
    with pytest.raises(ConfigError, match="target class 'prime' is not among"):
        validate_class_map({"0": "even", "1": "odd", "2": "prime"}, DIGITS, ["even", "odd"])


def test_class_mapped_kd_map_sources_and_errors(tmp_path):
    parity = {c: "odd" if int(c) % 2 else "even" for c in DIGITS}
    cfg = ClassMappedKDConfig
    # from params, validated against the teacher's and the student's classes
    assert resolve_map(cfg(map={int(c): v for c, v in parity.items()}), DIGITS, ["even", "odd"], None) == parity
    with pytest.raises(ConfigError, match="unknown source class '10'"):
        resolve_map(cfg(map={**parity, "10": "odd"}), DIGITS, ["even", "odd"], None)
    with pytest.raises(ConfigError, match="target class 'odd' is reached by no source class"):
        resolve_map(cfg(map={"0": "even"}), DIGITS, ["even", "odd"], None)
    # from the data's task definition, when the teacher knows the base classes
    task = types.SimpleNamespace(class_map=parity, base_classes=DIGITS)
    assert resolve_map(cfg(), DIGITS, ["even", "odd"], task) == parity
    # identity in one label space; otherwise a one-line request for a map
    assert resolve_map(cfg(), ["a", "b"], ["a", "b"], None) == {"a": "a", "b": "b"}
    with pytest.raises(ConfigError, match="needs a class map from the teacher's 5 classes"):
        resolve_map(cfg(), list("01234"), list("56789"), None)
    path = tmp_path / "m.yaml"
    path.write_text("{0: even, 1: odd, 2: even, 3: odd, 4: even, 5: odd, 6: even, 7: odd, 8: even, 9: odd}\n")
    assert resolve_map(cfg(map_file=str(path)), DIGITS, ["even", "odd"], None) == parity
    with pytest.raises(ConfigError, match="map or map_file, not both"):
        cfg(map=parity, map_file=str(path))


def test_teacher_cache_key_is_canonical_and_ignores_the_switches_left_at_their_defaults():
    import hashlib
    import json

    from kdzoo.config import canonical, to_dict
    from kdzoo.train.teacher import teacher_config, teacher_key

    config = make_config({"teacher": "lenet5", "data": "mnist5k"})
    d = config.data
    spec = {"model": {k: v for k, v in to_dict(config.teacher).items() if k not in ("use_ema", "new_head")},
            "train": {k: v for k, v in to_dict(config.teacher_train).items() if k not in ("random_init", "finetune")},
            "data": {"name": d.name, "split_seed": d.split_seed, "val_fraction": d.val_fraction,
                     "test_fraction": d.test_fraction, "batch_size": d.batch_size, "shift_pixels": d.shift_pixels},
            "format": 2}
    assert teacher_key(config) == hashlib.sha256(json.dumps(canonical(spec), sort_keys=True).encode()).hexdigest()[:16]
    assert teacher_key(make_config({"teacher": "lenet5", "data": "mnist5k", "teacher_train": {"epochs": 15.0}})) \
        == teacher_key(config)
    other = make_config({"teacher": "lenet5", "data": "mnist5k:mod3", "teacher_data": "mnist5k"})
    assert teacher_key(other) == teacher_key(config)  # the mod-3 student reuses the 10-digit teacher
    assert teacher_config(other).data.name == "mnist5k"
    rand = make_config({"teacher": "lenet5", "data": "mnist5k", "teacher_train": {"random_init": True}})
    assert teacher_key(rand) != teacher_key(config)
