"""sgdbayes.glue: values reach myst_nb.glue as Python numbers that {glue:text} can format."""

import numpy as np
import pytest
import torch

from sgdbayes import glue as glue_module


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.float64(0.25), 0.25),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7),
        (np.bool_(True), True),
        (np.array(3.5), 3.5),
        (torch.tensor(2.0), 2.0),
    ],
)
def test_numpy_and_torch_scalars_become_python_numbers(value, expected):
    out = glue_module.as_python(value)
    assert type(out) is type(expected) and out == expected
    # the text/plain repr must parse as a number: that is what {glue:text}`name:.3f` does
    if not isinstance(out, bool):
        float(repr(out))


def test_other_values_pass_through_unchanged():
    arr = np.arange(3)
    assert glue_module.as_python(arr) is arr
    assert glue_module.as_python("text") == "text"
    t = torch.arange(2)
    assert glue_module.as_python(t) is t


def test_glue_all_hands_converted_values_to_myst_nb(monkeypatch):
    seen = {}

    def fake_glue(name, value, display=True):
        seen[name] = (value, display)

    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", fake_glue)
    glue_module.glue_all({"a": np.float64(1.5), "b": "x"})
    assert seen == {"a": (1.5, False), "b": ("x", False)}
    assert type(seen["a"][0]) is float
