"""Views: what a person looks at. Figure arrays from a run's parameters, matplotlib figures from
arrays, the HTML report with its live explorer, and the comparison page.

drawing           the arrays behind a run's figures (encodings, decoded means, posteriors, completions)
plots             the run's figures: samples, latent space, interpolation, manifold, curves, ...
completion_plots  posterior isocontours, completions, the SVI trace
exact_plots       the bounds against K, the gaps per image, true posteriors
ais_plots         AIS against T beside the IWAE bounds against K, BDMC's two bounds, AIS minus IWAE per image
compare_plots     the comparison page's figures
report            the run's self-contained HTML report
explorer          the report's latent-space explorer (explorer.js decodes z in the page)
compare           one HTML page comparing runs, groups of seeds and sweeps
reproduced        a reproduced protocol's page: the paper's numbers beside ours, in the paper's axes

Imports: every layer below (model, data, config, parallel, evaluation, runs); never training.
"""

import importlib

# Imported when first used (views.report, views.plots, ...): matplotlib costs half a second at start,
# and aevb train or evaluate draws nothing.
SUBMODULES = ("ais_plots", "compare", "compare_plots", "completion_plots", "drawing", "exact_plots", "explorer",
              "plots", "report", "reproduced")


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
