"""ipywidgets explorers, one module per chapter. Each explorer also returns its default view as an ordinary figure,
so the static book shows it even though widget callbacks need a live kernel."""
