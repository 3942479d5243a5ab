"""matplotlib backend of sandcell's cell mode (MPLBACKEND=module://_sandcell_mpl).

Draws with Agg; plt.show() sends every open figure as a display_data
output (image/png, optionally image/svg+xml: sandcell.set_figure_formats)
and closes it, as Jupyter's inline backend does.
"""
from matplotlib.backend_bases import FigureManagerBase  # type: ignore[import]
from matplotlib.backends.backend_agg import FigureCanvasAgg  # type: ignore[import]

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def show(*args, **kwargs):
    # type: (object, object) -> None
    import _sandcell_cell
    _sandcell_cell.capture_figures()
