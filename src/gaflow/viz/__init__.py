"""Views of explanations: HTML heat-maps, flow-graph figures, text tables, benchmark plots."""

from .flowplot import FlowFigure, flow_figure
from .html import render_fragment, render_html
from .text import generation_table

__all__ = ["FlowFigure", "flow_figure", "generation_table", "render_fragment", "render_html"]
