"""Models of the lifecycle engine (checklist templates, runs, tasks, hardware returns).

They arrive with the lifecycle-engine issue; see the package docstring.
"""
