"""What a run shows: report.html (html.py) and its pictures (plots.py). Imports no training or export code."""
