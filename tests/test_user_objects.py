"""Your own nn.Module pair and torch Dataset through kdzoo.distill, for logit, feature and data-free strategies."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import kdzoo
from kdzoo.contract.errors import ConfigError


class Net(nn.Module):
    """A plain PyTorch CNN (not a timm model): two conv blocks, pooled, then a linear classifier."""

    def __init__(self, width=8, classes=10):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                    nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        return self.fc(self.pool(self.block2(self.block1(x))).flatten(1))


class Digits(Dataset):
    """scikit-learn's 8x8 digits as (image [1, 8, 8] in [0, 1], class id), with classes and targets."""

    def __init__(self, part, parts=2):
        from sklearn.datasets import load_digits

        d = load_digits()
        keep = [i for i in range(len(d.target)) if i % parts == part]
        self.images = torch.tensor(d.images[keep], dtype=torch.float32).unsqueeze(1) / 16
        self.targets = [int(t) for t in d.target[keep]]
        self.classes = [str(c) for c in range(10)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], self.targets[i]


COMMON = {"train": {"steps": 6, "seeds": [0]}, "runtime": {"progress": False, "threads": 1},
          "data": {"batch_size": 32, "num_workers": 0}}


@pytest.fixture
def trained_teacher():
    torch.manual_seed(0)
    return Net(width=8)


def run(tmp_path, strategy, teacher, **extra):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    config = dict(COMMON, strategy=strategy, out=str(tmp_path))
    result = kdzoo.distill(config, teacher=teacher, student=Net(width=4), train=Digits(0), val=Digits(1),
                           log=lambda *a: None, **extra)
    for key, value in teacher.state_dict().items():  # used as given: never trained, BN statistics untouched
        assert torch.equal(value, before[key]), key
    assert all(not p.requires_grad for p in teacher.parameters())
    return result


def test_kd_with_user_modules_and_datasets(tmp_path, trained_teacher):
    result = run(tmp_path, "kd", trained_teacher)
    assert result.config.data.name == "user" and result.config.student.name == "user:Net"
    assert 0 <= result.values()[0] <= 100 and result.teacher["meta"]["source"] == "user"


def test_feature_strategy_resolves_layers_by_module_name(tmp_path, trained_teacher):
    strategy = [{"name": "fitnet", "params": {"hint": "block2", "guided": "block1"}}]
    result = run(tmp_path, strategy, trained_teacher)
    assert result.teacher["meta"]["kwargs"]["feature_layers"] == ["block1", "block2"]  # found automatically
    assert result.values()[0] >= 0
    pooled = run(tmp_path, "pooled-feature", trained_teacher)  # pooled = the input of the classifier `fc`
    assert pooled.values()[0] >= 0


def test_data_free_strategy_with_user_modules(tmp_path, trained_teacher):
    strategy = [{"name": "dafl", "params": {"ngf": 8, "nz": 16}}]
    assert run(tmp_path, strategy, trained_teacher).values()[0] >= 0


def test_user_dataloader_and_stratified_validation(tmp_path, trained_teacher):
    loader = DataLoader(Digits(0), batch_size=16, shuffle=True)
    config = dict(COMMON, strategy="kd", out=str(tmp_path))
    result = kdzoo.distill(config, teacher=trained_teacher, student=Net(width=4), train=loader, test=Digits(1),
                           log=lambda *a: None)
    assert result.values()[0] >= 0


def test_objects_of_the_wrong_kind_fail_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match="expected a torch Dataset or DataLoader, got list"):
        kdzoo.distill(dict(COMMON, strategy="ce"), student=Net(), train=[1, 2, 3])


def test_own_dataloader_resumes_by_step_count_with_a_warning():
    from kdzoo.user import UserLoaderPlan

    said = []
    loader = DataLoader(Digits(0), batch_size=100)
    plan = UserLoaderPlan(loader, log=said.append)
    assert [len(plan.batch(s).y) for s in range(10)][-2:] == [99, 100]  # 899 samples: cycles into epoch 2
    assert not said
    resumed = UserLoaderPlan(loader, log=said.append)
    resumed.batch(7)
    assert len(said) == 1 and "not exactly" in said[0] and "step 7" in said[0]


def test_teacher_cache_is_off_for_user_data(tmp_path, trained_teacher, monkeypatch):
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    said = []
    config = dict(COMMON, strategy="kd", out=str(tmp_path))
    kdzoo.distill(config, teacher=trained_teacher, student=Net(width=4), train=Digits(0), val=Digits(1),
                  log=said.append)
    assert any("teacher-output cache off" in line for line in said)
    assert not (tmp_path / "cache" / "teacher-outputs").exists()


def test_pooled_features_of_a_module_without_classifier_are_a_one_line_user_error():
    """A user's module with no nn.Linear cannot give the pooled feature a strategy asks for: a
    ConfigError (one line, exit 2 through the CLI), not an internal NotImplementedError."""
    import torch
    from torch import nn

    from kdzoo import ConfigError
    from kdzoo.user import HookedNet

    net = HookedNet(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(1)), [], None)
    with pytest.raises(ConfigError, match="has no classifier module .* name one with classifier="):
        net._run(torch.zeros(1, 1, 8, 8), [], pooled=True)


def test_a_torchvision_dataset_object_is_read_in_place(tmp_path, trained_teacher):
    """torchvision's own FashionMNIST object (PIL items, ``targets``, ``classes``), no transform given."""
    from torchvision.datasets import FashionMNIST

    from test_streaming import write_idx_folder

    write_idx_folder(tmp_path / "FashionMNIST" / "raw", n_train=40, n_test=20, gz=False)
    train, test = (FashionMNIST(str(tmp_path), train=flag, download=False) for flag in (True, False))
    assert type(train[0][0]).__module__.startswith("PIL.")
    config = dict(COMMON, strategy="kd", out=str(tmp_path / "runs"), data={"batch_size": 8, "num_workers": 0,
                                                                          "val_fraction": 0.25})
    teacher = Net(width=8)
    result = kdzoo.distill(config, teacher=teacher, student=Net(width=4), train=train, test=test, log=lambda *a: None)
    from kdzoo.user import as_input

    x = as_input(train[3][0])
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x * 255, train.data[3].unsqueeze(0).float())  # the same pixels, scaled as ToTensor does
    assert list(result.seeds) == [0] and 0 <= result.values()[0] <= 100
    assert result.seeds[0]["test_best"]  # evaluated on the 20 official test images


def test_a_run_from_python_objects_resumes_only_with_them(tmp_path, trained_teacher, capsys):
    from kdzoo.cli import main

    config = dict(COMMON, strategy="kd", out=str(tmp_path), name="objects")
    first = kdzoo.distill(config, teacher=trained_teacher, student=Net(width=4), train=Digits(0), val=Digits(1),
                          log=lambda *a: None)
    run = str(tmp_path / "objects")
    status = (tmp_path / "objects" / "status.json").read_bytes()
    assert main(["distill", "--resume", run]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the run was made from Python objects (teacher, student, train)" in err
    assert f"kdzoo.distill(resume={run!r}, teacher=..., student=..., train=...)" in err
    with pytest.raises(ConfigError, match=r"objects \(teacher, student, train\)"):
        kdzoo.distill(resume=run, teacher=trained_teacher, log=lambda *a: None)
    assert (tmp_path / "objects" / "status.json").read_bytes() == status  # a refused resume changes nothing
    again = kdzoo.distill(resume=run, teacher=trained_teacher, student=Net(width=4), train=Digits(0), val=Digits(1),
                          log=lambda *a: None)
    assert again.values() == first.values()
