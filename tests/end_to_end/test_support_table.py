"""docs/support.md is the generated table of what graphc supports of PyTorch's API: it
must be what the generator writes from the code now (regenerate it with
``python -m graphc.testing.support --write docs/support.md``)."""
import os

import pytest

from graphc.testing import support

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "support.md")


def test_support_table_is_current():
    torch = pytest.importorskip("torch")
    want = support.markdown(support.table(torch), torch.__version__.split("+")[0])
    with open(DOC) as f:
        assert f.read() == want, "docs/support.md is stale: regenerate it"


def test_refused_names_raise_not_implemented_naming_the_feature():
    import graphc
    from graphc.unsupported import REFUSED
    assert "torch.optim.SparseAdam" in REFUSED
    assert "torch.nn.parallel.DistributedDataParallel" not in REFUSED   # built since
    with pytest.raises(NotImplementedError, match="SparseAdam.*Instead"):
        graphc.optim.SparseAdam([graphc.zeros(1, requires_grad=True)])
