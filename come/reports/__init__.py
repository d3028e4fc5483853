"""Reports: metrics summary, paper tables (ours / paper / diff), figures and the results index.

Everything is computed from run outputs under `results/runs/`; the only typed-in numbers are
the paper's reference values read from `config/paper_tables.csv`.
"""
