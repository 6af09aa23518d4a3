"""The `image` area, for the rule loader: `mldoctor image check` judges images with its own pure checks
(`mldoctor.image.checks.judge`, ids `image.*`), not with the host's chain, so nothing is registered here.

This module exists so that listing `image` in `model.AREAS` (which the table, JUnit and Markdown renderers need to
show image rows) keeps `rules.load()` working: it imports `mldoctor.rules.<area>` for every area.
"""
