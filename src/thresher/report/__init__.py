"""Figures and reports (matplotlib, plotly): imported lazily, never by the core."""
