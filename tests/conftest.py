import os
from pathlib import Path

import pytest
import torch

# The suite's tensors are small: extra intra-op threads only add overhead, and with other
# processes on the machine they oversubscribe its cores (a 1 us op then takes ~10 ms).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shared_data_dir() -> Path:
    """The real data beside the project (../shared/data) or $REPARAM_DATA_DIR; skip if absent."""
    path = Path(os.environ.get("REPARAM_DATA_DIR", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real data folder {path} not present")
    return path
