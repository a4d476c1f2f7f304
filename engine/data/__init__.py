"""Datasets: spec, manifest, image decoding, scan and EDA statistics, the demo dataset."""

from engine.data.demo import make_demo_dataset
from engine.data.images import load_rgb
from engine.data.manifest import Dataset, open_dataset
from engine.data.problems import Problem
from engine.data.spec import DatasetSpec, read_spec, write_spec

__all__ = ["Dataset", "DatasetSpec", "Problem", "load_rgb", "make_demo_dataset", "open_dataset", "read_spec", "write_spec"]
