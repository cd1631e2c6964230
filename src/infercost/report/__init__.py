"""Reports: terminal output, and the recommendation rendered as markdown, HTML, JSON and FOCUS CSV.
`infercost.report(recommendation, out_dir)` writes the files (see infercost.api.report)."""

from infercost import callable_package

callable_package(__name__)
