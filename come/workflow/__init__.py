"""The experiment grid as data: schema, validation, expansion into runs, per-run configs."""
from .grid import (GRID_SCHEMA, Grid, GridRow, RunSpec, expand_runs, load_grid, load_methods,
                   resolve_run)

__all__ = ["GRID_SCHEMA", "Grid", "GridRow", "RunSpec", "expand_runs", "load_grid",
           "load_methods", "resolve_run"]
