import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root():
    from duomem.data import data_root as find

    if not os.environ.get("ALFWORLD_DATA"):
        pytest.fail("the tests need real ALFWorld games: set ALFWORLD_DATA (see README, 'Data')")
    return find()


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    from duomem.models import convert_gguf, packaged_gguf

    return convert_gguf(packaged_gguf(), tmp_path_factory.mktemp("models") / "smollm2")


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_dir, tmp_path_factory):
    from duomem.models import make_tiny_random

    return make_tiny_random(smollm2_dir, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def valid_unseen(data_root):
    from duomem.data import build_manifest

    return build_manifest(data_root, "valid_unseen")
