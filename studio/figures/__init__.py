"""Plotly figure builders: pure functions (data in, figure out), testable without Streamlit."""

from studio.figures.data import (
    class_colors,
    class_distribution_figure,
    metadata_figure,
    property_histogram_figure,
    split_distribution_figure,
)

__all__ = [
    "class_colors", "class_distribution_figure", "metadata_figure", "property_histogram_figure",
    "split_distribution_figure",
]
