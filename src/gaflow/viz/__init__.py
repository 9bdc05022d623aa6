"""Views of explanations: HTML heat-maps, flow-graph figures, benchmark plots."""

from .flowplot import FlowFigure, flow_figure
from .html import render_fragment, render_html

__all__ = ["FlowFigure", "flow_figure", "render_fragment", "render_html"]
