"""runner._tag_parameter_cells: the reader sees the commented parameters cell once; papermill's cell is folded."""

import nbformat

from sgdbayes.runner import _tag_parameter_cells


def _nb(param_tags=("parameters",)):
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"profile": "smoke", "n": 3}}
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"),
                nbformat.v4.new_code_cell("profile = 'default'  # set by the CLI\nn = 10  # networks",
                                          metadata={"tags": list(param_tags)}),
                nbformat.v4.new_code_cell('# Parameters\nprofile = "smoke"\nn = 3\n',
                                          metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(n)")]
    return nb


def test_defaults_open_injected_folded_and_labelled():
    nb = _nb(("parameters", "hide-cell"))
    _tag_parameter_cells(nb)
    params, injected, other = nb.cells[1], nb.cells[2], nb.cells[3]
    assert params.metadata["tags"] == ["parameters"]                 # shown once, open
    assert "hide-cell" in injected.metadata["tags"]                  # folded beneath
    assert injected.source.splitlines()[0].startswith("# The values this build used (profile 'smoke'")
    assert "# Parameters" not in injected.source and 'n = 3' in injected.source
    assert injected.metadata["mystnb"]["code_prompt_show"] == "Show the parameter values this build used"
    assert other.metadata.get("tags", []) == []
    # idempotent: a second pass changes nothing
    before = nbformat.writes(nb)
    _tag_parameter_cells(nb)
    assert nbformat.writes(nb) == before


def test_removed_parameters_cell_removes_the_injected_one_too():
    nb = _nb(("parameters", "remove-cell"))
    _tag_parameter_cells(nb)
    assert "remove-cell" in nb.cells[2].metadata["tags"]
    assert "remove-cell" in nb.cells[1].metadata["tags"]
